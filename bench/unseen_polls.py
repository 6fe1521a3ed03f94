"""A new user's first replay on real data no rule was tuned on: FiveThirtyEight's daily Trump
approval series (River's ``TrumpApproval``, 1,001 days, 2017-2019; the five pollsters' figures
predict FiveThirtyEight's average, a regression), replayed in calendar months, labels a month
late, through the project file ``retrainer init --task regression`` writes
(``HistGradientBoostingRegressor``, gate metric ``mae``, the ``page_hinkley`` concept detector).

A pollster's figure is carried forward day after day until its next poll, so a column holds one
value for days at a time and returns to it later: the data's own rhythm, not a stuck sensor nor
a fill value. Printed: the batches quarantined or with rows set aside (with their causes), the
longest stretch retraining was held back, the retrains, and the mean absolute error of the
continuously trained model against the one never retrained.

Three ways in: month by month (a replay), the monthly files as a backlog through ``retrainer
run``, and the same files without their id and date columns (a table with no key).
Run: ``.venv/bin/python bench/unseen_polls.py`` (about a minute).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from sqlalchemy import select

from retrainer.cli import project_template
from retrainer.project import Project
from retrainer.quarantine import set_aside_summary
from retrainer.record import stored_diagnosis
from retrainer.replay import ReplaySummary, summarise
from retrainer.store.tables import BatchRow, CheckRow

TARGET = "five_thirty_eight"


def polls() -> pd.DataFrame:
    from river.datasets import TrumpApproval

    frame = pd.read_csv(TrumpApproval().path)
    days = frame.pop("ordinal_date").astype(int)
    frame.insert(0, "id", days)
    frame.insert(1, "date", [dt.date.fromordinal(d).isoformat() for d in days])
    return frame


def settings(folder: Path) -> dict:
    """What ``retrainer init --task regression`` writes, pointed at this file."""
    config = yaml.safe_load(project_template("regression"))
    config["data"].update(target=TARGET, id_column="id", time_column="date")
    config["data"]["timezone"] = "UTC"  # dates alone need none now; the release before asked
    config["store"] = {"url": f"sqlite:///{folder / 'store.db'}", "artifacts": str(folder / "a")}
    return config


def monthly(
    project: Project, frame: pd.DataFrame, history: int, target: str = TARGET
) -> ReplaySummary:
    """``retrainer.replay.replay`` in calendar months (as a user's monthly files arrive): the
    first ``history`` months labelled at once, then each month's features, its labels (column
    ``target``, joined by ``id``) a month later, a cycle after each."""
    started = time.perf_counter()
    months = [g for _, g in frame.groupby(frame["date"].dt.strftime("%Y-%m"))]
    project.ingest(pd.concat(months[:history]), key="history", source="history")
    project.cycle()
    stream = months[history:]
    for step, month in enumerate(stream):
        if step:
            project.ingest_labels(stream[step - 1][["id", target]], key=f"labels-{step - 1}")
        project.ingest(month.drop(columns=target), key=f"month-{step}", source="monthly file")
        project.cycle()
    project.ingest_labels(stream[-1][["id", target]], key="labels-last")
    project.cycle()
    seconds = time.perf_counter() - started
    return summarise(project, len(stream), sum(map(len, stream)), None, seconds, None)


def backlog(
    folder: Path, frame: pd.DataFrame, cycles: int, keyless: bool = False
) -> tuple[Project, ReplaySummary]:
    """A folder of monthly files, labels inside, worked through by ``retrainer run`` (8 files a
    cycle), as a user starting on a history does; ``keyless``: the files without their id and
    date columns (rows known by their place in their file, batches by their order)."""
    from click.testing import CliRunner

    from retrainer.cli import main as cli

    started = time.perf_counter()
    (folder / "data" / "batches").mkdir(parents=True)
    for month, rows in frame.groupby(frame["date"].str[:7]):
        rows = rows.drop(columns=["id", "date"]) if keyless else rows
        rows.to_csv(folder / "data" / "batches" / f"{month}.csv", index=False)
    config = settings(folder)
    config["data"]["source"] = "data/batches"
    config["run"] = {"max_batches_per_cycle": 8}  # as the README's figures were measured
    if keyless:
        config["data"].update(id_column=None, time_column=None)
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", str(folder / "retrainer.yaml"), "run", "--max-cycles", str(cycles)]
    result = CliRunner().invoke(cli, [*args, "--interval", "0"])
    if result.exit_code:
        raise SystemExit(result.output)
    project = Project.from_yaml(folder / "retrainer.yaml")
    seconds = time.perf_counter() - started
    return project, summarise(project, 0, len(frame), None, seconds, None)


def outcome(title: str, project: Project, summary: ReplaySummary) -> None:
    with project.store.session() as s:
        batches = s.scalars(select(BatchRow).order_by(BatchRow.id)).all()
        drifted = set(
            s.scalars(
                select(CheckRow.batch_id).where(
                    CheckRow.name == "dataset_drift", CheckRow.alarm.is_(True)
                )
            )
        )
    aside = set_aside_summary(project) or {"rows": 0, "batches": []}
    longest = run = 0
    for b in batches:
        run = run + 1 if b.status == "quarantined" else 0
        longest = max(longest, run)
    print(f"\n{title}: {len(batches)} batches, {summary.rows_scored} rows")
    for b in batches:
        if b.status == "quarantined" or b.id in aside["batches"]:
            alarms = (stored_diagnosis(project, b.id) or {}).get("alarms", [])
            said = "; ".join(a["message"][:200] for a in alarms if a.get("blocking"))
            said = said or "rows with far-out values set aside"
            print(f"- batch {b.id} {b.status}: {said}")
    print(
        f"quarantined {sum(b.status == 'quarantined' for b in batches)}, "
        f"rows set aside {aside['rows']} ({len(aside['batches'])} batches), "
        f"longest held back {longest} batches, dataset drift alarms in {len(drifted)}"
    )
    trained, never = (
        "n/a" if v is None else f"{v:.4g}"
        for v in (summary.continuously_trained, summary.never_retrained)
    )
    print(
        f"retrains {summary.retrains} ({summary.promotions} promoted, {summary.rejected} "
        f"rejected); {summary.metric}: continuously trained {trained}, "
        f"never retrained {never} ({summary.seconds:.0f} s)"
    )


def main() -> None:
    frame = polls()
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.from_dict(settings(Path(tmp)), root=Path(tmp))
        dated = frame.assign(date=pd.to_datetime(frame["date"], utc=True))
        outcome("month by month", project, monthly(project, dated, history=4))
    with tempfile.TemporaryDirectory() as tmp:
        outcome("a backlog through `retrainer run`", *backlog(Path(tmp), frame, cycles=5))
    with tempfile.TemporaryDirectory() as tmp:
        title = "the same without the id and date columns"
        outcome(title, *backlog(Path(tmp), frame, cycles=5, keyless=True))


if __name__ == "__main__":
    main()
