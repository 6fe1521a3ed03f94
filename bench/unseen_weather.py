"""A new user's first replay on real seasonal data no rule was tuned on: Seattle's daily weather
2012-2015 (NOAA, 1,461 days, shipped in the ``vega_datasets`` wheel; precipitation, maximum and
minimum temperature and wind predict the day's weather, 5 classes), replayed in calendar months,
labels a month late, through the project file ``retrainer init`` writes (HistGradientBoosting,
its schedule, drift, concept and performance triggers).

Run twice, as a user would: first as ``init`` wrote it (a fixed reference), then with the
setting the first run's seasonality hint proposed (read from the store, not written here).
Printed per run: the hint, the batches whose drift check alarmed (per 100 batches after the
first year, when a seasonal reference can take hold) or raised an out-of-range warning, the
batches quarantined or with rows set aside (with their causes), the longest stretch retraining
was held back, the retrains and why, and the accuracy of the continuously trained model
against the one never retrained.
Run: ``.venv/bin/python bench/unseen_weather.py`` (a few minutes).
"""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path

import pandas as pd
import yaml
from sqlalchemy import select
from unseen_polls import monthly, outcome

from retrainer.cli import project_template
from retrainer.project import Project
from retrainer.store.tables import BatchRow, CheckRow, DecisionRow

TARGET = "weather"
HISTORY = 4  # months labelled at once before the replay


def seattle() -> pd.DataFrame:
    frame = pd.read_csv(files("vega_datasets") / "_data" / "seattle-weather.csv")
    frame.insert(0, "id", range(len(frame)))
    return frame.assign(date=pd.to_datetime(frame["date"], utc=True))


def settings(folder: Path, reference: dict | None) -> dict:
    """What ``retrainer init`` writes, pointed at this data (and ``reference`` if given)."""
    config = yaml.safe_load(project_template("classification"))
    config["data"].update(target=TARGET, id_column="id", time_column="date")
    config["store"] = {"url": f"sqlite:///{folder / 'store.db'}", "artifacts": str(folder / "a")}
    if reference:
        config["checks"]["drift"]["reference"] = reference
    return config


def drift_and_reasons(project: Project) -> None:
    with project.store.session() as s:
        drifted = set(
            s.scalars(
                select(CheckRow.batch_id).where(
                    CheckRow.name == "dataset_drift", CheckRow.alarm.is_(True)
                )
            )
        )
        batches = s.scalars(select(BatchRow.id).order_by(BatchRow.id)).all()
        ranged = set(
            s.scalars(
                select(CheckRow.batch_id).where(
                    CheckRow.name == "out_of_range", CheckRow.alarm.is_(True)
                )
            )
        )
        reasons = s.scalars(select(DecisionRow.reasons).where(DecisionRow.action == "retrain"))
        fired: dict[str, int] = {}
        for listed in reasons:
            for kind in {r.split(":", 1)[0] for r in listed}:
                fired[kind] = fired.get(kind, 0) + 1
    later = [b for b in batches if b > 1 + 12 - HISTORY]  # after the first year
    alarmed = sum(b in drifted for b in later)
    print(
        f"drift alarms: {len(drifted & set(batches))} of {len(batches)} batches; after the first "
        f"year {alarmed} of {len(later)} ({100 * alarmed / max(1, len(later)):.1f} per 100)"
    )
    print(f"batches with an out-of-range warning: {len(ranged)} of {len(batches)}")
    named = ", ".join(f"{k} {v}" for k, v in sorted(fired.items(), key=lambda kv: -kv[1]))
    print(f"retrain decisions naming each trigger: {named}")


def run(title: str, reference: dict | None) -> str | None:
    """One replay; returns the last seasonality hint it logged."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.from_dict(settings(Path(tmp), reference), root=Path(tmp))
        summary = monthly(project, seattle(), HISTORY, TARGET)
        outcome(title, project, summary)
        drift_and_reasons(project)
        hint = project.status()["hint"]
        print(f"hint: {hint}")
        return hint


def main() -> None:
    hint = run("as `retrainer init` wrote it (fixed reference)", None)
    if hint is None:
        print("no seasonality hint: nothing more to run")
        return
    run(f"with the hinted reference {suggested(hint)}", suggested(hint))


def suggested(hint: str) -> dict:
    """The reference setting a hint proposes, in either of its two forms.

    >>> suggested("...; set checks.drift.reference.kind: seasonal, period: 7d")
    {'kind': 'seasonal', 'period': '7d'}
    """
    if "set checks.drift.reference: " in hint:
        return yaml.safe_load(hint.rsplit("set checks.drift.reference: ", 1)[1])
    return yaml.safe_load("{" + hint.rsplit("set checks.drift.reference.", 1)[1] + "}")


if __name__ == "__main__":
    main()
