"""A changed relation through the live loop as a new user runs it: how soon a retrain is decided.

The project file is the CLI's template (``retrainer init``: ``src/retrainer/templates``), with
only the data's column names and the store changed (and one native thread for the trainer on
a shared machine). The stream is real ELEC2 rows after the Victorian data starts, shuffled so
that nothing changes between batches by construction (``retrainer.diagnosis.scenarios``): a
labelled history of 1,344 rows (4 weeks of ELEC2, the scenario suite's reference) in the first
4 days, then one batch of 30 rows a day, labels one batch late, through
``retrainer.replay`` (ingest, cycle, store: the loop ``retrainer run`` drives).

Two runs per seed:

- **flip**: from batch ``K`` (22) on, labels are flipped where ``nswdemand`` > 0.45 (the
  scenario ``elec2-flip``, about a quarter of the rows). The template retrains on schedule
  every 7 days, at batches 7, 14, 21 and 28 when nothing else retrains: the flip's labels
  arrive between two of them (a flip just before one is retrained away by the schedule,
  which hides how soon the relation test finds it). Printed: the labelled batch after the
  flip (1 = the first batch of flipped labels has been scored) at which the loop first decides
  to retrain with a changed-relation reason, and the first retrain decision of any reason
  after the flip, with its trigger types.
- **unchanged**: 60 batches and no flip. Printed: retrain decisions per 100 batches, split into
  configured ones (schedule every 7 days, volume, manual: retrains the user asked for) and
  false ones (performance, concept, drift or changed relation firing on an unchanged stream);
  the batches before the flip of the flip runs count as unchanged batches too.

Seeds: 0-1 are for tuning, 2-4 are held out and reported (``--seeds`` to choose).

Run: ``.venv/bin/python bench/relation_loop.py [--seeds 2 3 4] [--window-days 28]``; 0.5-1.5
minutes a seed on 2 shared cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")

from retrainer.diagnosis.scenarios import SCENARIOS, elec2_stream  # noqa: E402

TUNING_SEEDS, HELD_OUT_SEEDS = (0, 1), (2, 3, 4)
HISTORY_ROWS, HISTORY_DAYS = 1344, 4
FLIP_AT, AFTER, UNCHANGED = 22, 10, 60
CONFIGURED = {"schedule", "volume", "manual", "bootstrap"}


def template() -> dict:
    """The ``retrainer init`` template's project file, as a dict."""
    text = resources.files("retrainer").joinpath("templates/retrainer.yaml").read_text()
    return yaml.safe_load(text)


TEMPLATE_WINDOW = template()["trainer"]["window"]


def template_settings(folder: Path, window_days: float | None = None) -> dict:
    """The ``retrainer init`` template with the data's columns and a store in ``folder`` (and
    a training window of ``window_days`` instead of the template's, when given)."""
    settings = template()
    settings["data"].update(
        source=None, target="target", id_column="id", time_column="timestamp", timezone="UTC"
    )
    settings["trainer"]["threads"] = 1
    if window_days:
        settings["trainer"]["window"] = {"days": window_days}
    settings["store"] = {"url": f"sqlite:///{folder / 'store.db'}", "artifacts": str(folder / "a")}
    return settings


def stream_frame(seed: int, batches: int, rows: int, flip_at: int | None) -> pd.DataFrame:
    """History rows in the first days, then ``batches`` daily batches of ``rows`` rows; labels
    flipped in the region from batch ``flip_at`` on (None: unchanged)."""
    stream = elec2_stream(seed=seed)
    frame = stream.frame.iloc[: HISTORY_ROWS + batches * rows].reset_index(drop=True)
    begin = pd.Timestamp("2001-01-01", tz="UTC")
    history = np.arange(HISTORY_ROWS) * HISTORY_DAYS / HISTORY_ROWS  # days
    later = HISTORY_DAYS + np.arange(batches * rows) / rows
    days = np.concatenate([history, later])
    frame["timestamp"] = begin + pd.to_timedelta(np.round(days * 86_400), unit="s")
    frame["id"] = np.arange(len(frame))
    if flip_at is not None:
        inject = SCENARIOS["elec2-flip"].inject
        tail = frame.iloc[HISTORY_ROWS + flip_at * rows :]
        flipped = inject(tail.reset_index(drop=True), stream, np.random.default_rng(seed))
        frame.loc[tail.index, "target"] = flipped["target"].to_numpy()
    return frame


def run(seed: int, flip_at: int | None, batches: int, rows: int, window_days: float | None) -> dict:
    """Replay one stream through the template project; the retrain decisions per batch."""
    from retrainer import views
    from retrainer.project import Project
    from retrainer.replay import replay

    frame = stream_frame(seed, batches, rows, flip_at)
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.from_dict(template_settings(Path(tmp), window_days), root=Path(tmp))
        started = time.perf_counter()
        replay(project, frame, period="1D", history=HISTORY_DAYS, label_delay=1)
        decisions = views.decisions(project)
    # decision 0 is the history's; decision s + 1 the cycle of batch s (labels of s - 1 scored)
    retrains = {
        i - 1: [t for t in row.triggers]
        for i, row in enumerate(decisions.itertuples())
        if row.action == "retrain" and 1 <= i <= batches
    }
    return {"retrains": retrains, "seconds": time.perf_counter() - started}


def false_and_configured(retrains: dict, upto: int) -> tuple[int, int]:
    """Retrains before batch ``upto`` on an unchanged stream: (false, configured)."""
    early = [kinds for step, kinds in retrains.items() if step < upto]
    false = sum(bool(set(kinds) - CONFIGURED) for kinds in early)
    return false, len(early) - false


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--rows", type=int, default=30, help="rows per batch")
    parser.add_argument(
        "--window-days", type=float, help="train on this many days instead of the template's window"
    )
    args = parser.parse_args()
    held = [s for s in args.seeds if s in HELD_OUT_SEEDS]
    print(
        f"seeds {args.seeds} ({'held out' if len(held) == len(args.seeds) else 'tuning'}; "
        f"tuning {list(TUNING_SEEDS)}, held out {list(HELD_OUT_SEEDS)}); {args.rows} rows per "
        f"batch; window {f'{args.window_days:g} days' if args.window_days else TEMPLATE_WINDOW}; "
        f"flip from batch {FLIP_AT}; numpy {np.__version__}, pandas {pd.__version__}"
    )
    flips, quiet = [], []
    false_total = configured_total = batches_total = 0
    for seed in args.seeds:
        flip = run(seed, FLIP_AT, FLIP_AT + AFTER, args.rows, args.window_days)
        after = {s - FLIP_AT: kinds for s, kinds in flip["retrains"].items() if s > FLIP_AT}
        relation = min((m for m, k in after.items() if "changed relation" in k), default=None)
        first = min(after, default=None)
        before = false_and_configured(flip["retrains"], FLIP_AT + 1)
        flips.append((seed, relation, first, after.get(first, []), before, flip["seconds"]))
        same = run(seed, None, UNCHANGED, args.rows, args.window_days)
        false, configured = false_and_configured(same["retrains"], UNCHANGED)
        counts = Counter(k for kinds in same["retrains"].values() for k in set(kinds))
        reasons = [f"{k} {n}" for k, n in sorted(counts.items())]
        quiet.append((seed, false, configured, reasons, same["seconds"]))
        false_total += false + before[0]
        configured_total += configured + before[1]
        batches_total += UNCHANGED + FLIP_AT + 1
        print(f"  seed {seed} done ({flip['seconds'] + same['seconds']:.0f} s)", flush=True)

    print(f"\n### flipped region (labels flipped where nswdemand > 0.45 from batch {FLIP_AT} on)\n")
    print(
        "| seed | changed-relation retrain at labelled batch | first retrain after the flip "
        "(labelled batch: triggers) | retrains before it: false / configured |"
    )
    print("|---|---|---|---|")
    for seed, relation, first, kinds, before, _ in flips:
        shown = "-" if first is None else f"{first}: {', '.join(kinds)}"
        print(f"| {seed} | {relation or 'none'} | {shown} | {before[0]} / {before[1]} |")
    within = sum(r is not None and r <= 2 for _, r, *_ in flips)
    print(f"\nchanged-relation retrain within 2 labelled batches: {within} of {len(flips)}")

    print(f"\n### unchanged streams ({UNCHANGED} batches)\n")
    print("| seed | false retrains | configured retrains | retrains a trigger type was among |")
    print("|---|---|---|---|")
    for seed, false, configured, reasons, _ in quiet:
        print(f"| {seed} | {false} | {configured} | {', '.join(reasons)} |")
    print(
        f"\nfalse retrains: {false_total} in {batches_total} unchanged batches "
        f"({100 * false_total / batches_total:.1f} per 100; with the flip runs' batches before "
        f"the flip); configured: {100 * configured_total / batches_total:.1f} per 100"
    )


if __name__ == "__main__":
    main()
