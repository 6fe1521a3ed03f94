"""Diagnosis on the scenario suite: which cause ranks first, how fast, and false alarms.

Clean real streams (ELEC2 after the Victorian data starts, HAPT smartphone sensors, ACS
employment 2015; rows shuffled so nothing changes by construction) get one cause injected from
batch 6 on (see ``retrainer.diagnosis.scenarios``). Printed: each scenario, the confusion matrix
true cause x first-ranked diagnosed cause, the detection delay in batches, the false alarms of
the no-change runs per 100 batches, and ELEC2's real upstream change (row 17,424).

Run: .venv/bin/python bench/diagnosis.py
"""

import time

from retrainer.diagnosis.scenarios import SCENARIOS, confusion, elec2_fill_case, run_suite


def main() -> None:
    started = time.perf_counter()
    results = run_suite(quiet_steps=100)
    seconds = time.perf_counter() - started
    injected = [r for r in results if r.cause is not None]
    quiet = [r for r in results if r.cause is None]
    print("| scenario | injected from batch 6 | true cause | ranked first | delay (batches) |")
    print("|---|---|---|---|---|")
    for r in injected:
        mark = "" if r.right else " (wrong)"
        delay = "-" if r.delay is None else str(r.delay)
        what = SCENARIOS[r.scenario].what
        print(f"| {r.scenario} | {what} | {r.cause} | {r.diagnosed}{mark} | {delay} |")
    table = confusion(results)
    print("\nconfusion matrix, true cause (rows) x first-ranked diagnosed cause (columns):\n")
    print("| true \\ diagnosed | " + " | ".join(table.columns) + " |")
    print("|---" * (len(table.columns) + 1) + "|")
    for cause, row in table.iterrows():
        print(f"| {cause} | " + " | ".join(str(v) for v in row) + " |")
    right = sum(r.right for r in injected)
    print(f"\nright cause first: {right} of {len(injected)} ({100 * right / len(injected):.0f}%)")
    for cause in table.index:
        delays = [r.delay for r in injected if r.cause == cause and r.right]
        if delays:
            print(
                f"  {cause}: mean delay {sum(delays) / len(delays):.2f} batches, max {max(delays)}"
            )
    batches = sum(r.steps for r in quiet)
    alarms = sum(r.false_alarms for r in quiet)
    print(
        f"no-change runs: {alarms} alarms in {batches} batches "
        f"({100 * alarms / batches:.2f} per 100 batches; "
        + ", ".join(f"{r.scenario} {r.false_alarms}/{r.steps}" for r in quiet)
        + ")"
    )
    print(f"suite time: {seconds:.1f} s\n")
    print("ELEC2's real upstream change (the week holding row 17,424, against the 4 weeks before):")
    for line in elec2_fill_case().explain():
        print("  " + line)


if __name__ == "__main__":
    main()
