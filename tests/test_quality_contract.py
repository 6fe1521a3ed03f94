"""The data contract and the quality checks added to it: row count, constant and stuck values,
vanished categories, timestamp order and future timestamps; and the profile's higher moments,
bin sums and runs, merged exactly (against SciPy and NumPy)."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retrainer.checks.quality import check_quality
from retrainer.data.schema import ColumnSpec, Schema
from retrainer.profile import BatchProfile, profile_column
from tests.conftest import REGRESSION
from tests.diagnosis_helpers import seattle_weather


def _check(ref: pd.DataFrame, cur: pd.DataFrame, schema: Schema | None = None, **kw):
    schema = schema or Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    current = BatchProfile.from_frame(cur, schema, edges=reference.edges())
    return {(r.name, r.column): r for r in check_quality(reference, current, schema, **kw)}


def test_row_count_contract_round_trips_and_alarms():
    ref = pd.DataFrame({"x": np.arange(100.0)})
    schema = Schema(Schema.infer(ref).columns, min_rows=50, max_rows=80)
    assert Schema.from_dict(schema.to_dict()) == schema
    short = _check(ref, ref.head(10), schema)[("row_count", None)]
    fine = _check(ref, ref.head(60), schema)[("row_count", None)]
    assert (
        short.alarm
        and short.severity == "error"
        and "outside the expected [50, 80]" in (short.message)
    )
    assert not fine.alarm
    assert ("row_count", None) not in _check(ref, ref.head(10))
    with pytest.raises(ValueError, match="row count"):
        Schema(schema.columns, min_rows=10, max_rows=5)


def test_constant_and_stuck_values():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=500)})
    stuck = ref.head(200).copy()
    stuck.iloc[50:120, 0] = 3.25
    flat = pd.DataFrame({"x": [1.0] * 100})
    results = _check(ref, stuck)
    assert results[("stuck", "x")].alarm and results[("stuck", "x")].statistic == 70
    assert not results[("constant", "x")].alarm
    assert _check(ref, flat)[("constant", "x")].alarm
    assert not _check(ref, ref.tail(200))[("stuck", "x")].alarm


def test_without_a_contract_s_categories_the_reference_s_are_known():
    first = pd.DataFrame({"c": ["a", "b"] * 20})
    later = pd.DataFrame({"c": ["a", "b", "c"] * 20})  # what the champion learnt from
    schema = Schema.infer(first)
    reference = BatchProfile.from_frame(later, schema.types_only())
    batch = BatchProfile.from_frame(pd.DataFrame({"c": ["c", "a"] * 10}), schema.types_only())
    [seen] = [r for r in check_quality(reference, batch, schema.types_only())
              if r.name == "unseen_category"]  # fmt: skip
    assert not seen.alarm, seen.message
    [contract] = [r for r in check_quality(reference, batch, schema) if r.name == "unseen_category"]
    assert contract.alarm and "'c'" in contract.message  # a declared list still decides


def test_vanished_categories():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"c": rng.choice(list("abcd"), 2000, p=[0.4, 0.3, 0.2, 0.1])})
    gone = pd.DataFrame({"c": rng.choice(list("abc"), 500, p=[0.5, 0.3, 0.2])})
    tiny = pd.DataFrame({"c": ["a", "b"] * 10})
    assert _check(ref, gone)[("vanished_category", "c")].alarm
    assert _check(ref, gone)[("vanished_category", "c")].detail["vanished"] == ["d"]
    assert not _check(ref, tiny)[("vanished_category", "c")].alarm, "too few rows to expect d"


def test_timestamps_out_of_order_and_in_the_future():
    t = pd.Series(pd.date_range("2024-01-01", periods=100, freq="h", tz="UTC"))
    ref = pd.DataFrame({"t": t})
    shuffled = pd.DataFrame({"t": t.sample(frac=1.0, random_state=0).to_numpy()})
    now = datetime(2024, 1, 3, tzinfo=UTC)
    ordered = _check(ref, ref, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert not ordered[("timestamp_order", "t")].alarm
    assert not ordered[("future_timestamp", "t")].alarm
    late = _check(ref, shuffled, now=now)
    assert late[("timestamp_order", "t")].alarm and late[("future_timestamp", "t")].alarm


def test_profile_moments_sums_and_runs_merge_exactly():
    rng = np.random.default_rng(2)
    values = rng.lognormal(size=3000)
    values[100:130] = 7.0
    spec = ColumnSpec("x", "numeric", True)
    whole = profile_column(pd.Series(values), spec)
    edges = np.asarray(whole.edges)
    a = profile_column(pd.Series(values[:1234]), spec, edges=edges)
    b = profile_column(pd.Series(values[1234:]), spec, edges=edges)
    merged = a.merge(b)
    assert merged.skewness == pytest.approx(stats.skew(values), rel=1e-9)
    assert merged.kurtosis == pytest.approx(stats.kurtosis(values), rel=1e-9)
    assert whole.skewness == pytest.approx(stats.skew(values), rel=1e-9)
    index = np.searchsorted(edges[:-1], values, side="right") + (values > edges[-1])
    sums = np.bincount(index, weights=values, minlength=edges.size + 1)
    assert merged.sums == pytest.approx(tuple(sums))
    assert whole.max_run == merged.max_run == 30
    back = type(merged).from_dict(merged.to_dict())
    assert back == merged


def test_an_inferred_contract_measures_ranges_against_the_champion_not_the_first_batch(
    make_project,
):
    """Seattle's real weather: the first batch (January 2012) gives the inferred contract its
    types; a summer month inside the range the champion learnt from (January to August) is no
    out-of-range warning (against January's range it was 31 of 31 values)."""
    from sqlalchemy import select

    from retrainer.store.tables import CheckRow

    weather = seattle_weather().assign(id=lambda d: range(len(d)))
    weather["date"] = weather["date"].dt.tz_localize("UTC")
    month = weather["date"].dt.strftime("%Y-%m")
    project = make_project(
        data={"target": "weather", "id_column": "id", "time_column": "date"},
        trainer={"estimator": "sklearn.tree.DecisionTreeClassifier", "window": {"all": True},
                 "min_rows": 100},
        policy={"triggers": [{"type": "manual"}]},
    )  # fmt: skip
    project.ingest(weather[month == "2012-01"], key="january")
    project.ingest(weather[(month > "2012-01") & (month <= "2012-08")], key="spring-summer")
    project.cycle()
    assert {c.name: c.max for c in project.schema().columns}["temp_max"] is None
    project.ingest(weather[month == "2013-07"].drop(columns="weather"), key="july-2013")
    project.cycle()
    with project.store.session() as s:
        ranged = s.scalars(
            select(CheckRow).where(CheckRow.name == "out_of_range", CheckRow.column == "temp_max")
        ).all()
    assert ranged and not any(r.alarm for r in ranged), [r.detail["message"] for r in ranged]
    assert "outside [-1.1, 34.4]" in ranged[-1].detail["message"], ranged[-1].detail["message"]


REGRESSOR = {  # the loop tests below: HistGradientBoosting, which takes nulls
    **REGRESSION,
    "trainer": {
        **REGRESSION["trainer"],
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "min_rows": 100,
    },
}


def _league_batches(seed: int, shares: list[float], rows: int = 130) -> list[pd.DataFrame]:
    """Batches whose column ``cs`` is null in the given share of rows (one league stopped
    recording it, as baseball's National League did from 1926 to 1950)."""
    rng = np.random.default_rng(seed)
    out = []
    for share in shares:
        cs = rng.poisson(5, rows).astype(float)
        cs[rng.permutation(rows)[: round(share * rows)]] = np.nan
        out.append(pd.DataFrame({"games": rng.gamma(4, 25, rows), "cs": cs}))
    return out


def test_the_null_limit_counts_from_the_most_nulls_one_of_the_reference_s_batches_had():
    """A reference of 8 batches, 2 of them with half their ``cs`` missing (12.5 % pooled): the
    model was trained on such batches, so another one is no rise. Their shares differ beyond
    chance, so 65 % is within what batches like them do (``batch_level.null_limit``); a batch
    whose ``cs`` is gone (null in every row) is not. Pooled without batches, half was an error."""
    ref_batches = _league_batches(0, [0, 0, 0, 0, 0, 0, 0.5, 0.5])
    frame = pd.concat(ref_batches, ignore_index=True)
    schema = Schema.infer(frame.fillna(0.0))
    batch_of = np.repeat(np.arange(8), 130)
    reference = BatchProfile.from_frame(frame, schema, batches=batch_of)
    pooled = BatchProfile.from_frame(frame, schema)
    assert (
        reference.columns["cs"].batch_null_max == 0.5 and pooled.columns["cs"].null_share == 0.125
    )

    def null_rate(ref: BatchProfile, share: float):
        cur = BatchProfile.from_frame(_league_batches(1, [share])[0], schema, edges=ref.edges())
        return next(r for r in check_quality(ref, cur, schema) if r.name == "null_rate"
                    and r.column == "cs")  # fmt: skip

    half = null_rate(reference, 0.5)
    assert not half.alarm and "50.0% in one of its batches" in half.message
    assert not null_rate(reference, 0.65).alarm and null_rate(reference, 1.0).alarm
    assert null_rate(pooled, 0.5).alarm
    # merged from batch profiles (a rolling reference) it is the same; chunks of one batch are
    # not batches
    merged = BatchProfile.from_frame(ref_batches[0], schema)
    for part in ref_batches[1:]:
        merged = merged.merge(BatchProfile.from_frame(part, schema, edges=merged.edges()))
    assert merged.columns["cs"].batch_null_max == 0.5
    chunks = (frame.iloc[i : i + 130] for i in range(0, len(frame), 130))
    one = BatchProfile.from_chunks(chunks, schema, edges=reference.edges())
    assert one.columns["cs"].batch_null_max is None
    assert BatchProfile.from_dict(reference.to_dict()) == reference


def test_a_champion_trained_on_half_missing_batches_accepts_the_next_one(make_project):
    """Through the loop: the champion's reference records the most nulls of its window's
    batches, so a batch like them proceeds and a column gone entirely is still quarantined."""
    project = make_project(**REGRESSOR)
    start = pd.Timestamp("1930-01-01", tz="UTC")

    def batch(k: int, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(
            id=range(1000 * k, 1000 * k + len(frame)),
            timestamp=start + pd.Timedelta(days=7 * k),
            target=frame["games"] / 10 + frame["cs"].fillna(0.0),
        )

    for k, frame in enumerate(_league_batches(2, [0, 0, 0.5, 0.5])):
        project.ingest(batch(k, frame), key=f"w{k}")
    project.cycle()
    assert project.champion is not None
    ids = [project.ingest(batch(k, _league_batches(k, [s])[0]), key=f"w{k}").id
           for k, s in [(4, 0.5), (5, 1.0)]]  # fmt: skip
    assert project.cycle().quarantined == (ids[1],)


def _seasons(seed: int, seasons: int, clubs: int = 40, league: int = 18) -> list[pd.DataFrame]:
    """Football seasons: ``league`` of ``clubs`` clubs play, 3 relegated and 3 promoted each
    season (as in the Bundesliga), so every season brings clubs the one before lacked."""
    rng = np.random.default_rng(seed)
    playing = list(rng.choice(clubs, league, replace=False))
    out = []
    for _ in range(seasons):
        rows = [(h, a) for h in playing for a in playing if h != a]
        out.append(pd.DataFrame(rows, columns=["home", "away"]).map(lambda c: f"club {c}"))
        out[-1]["goals"] = rng.poisson(1.5, len(rows)).astype(float)
        rest = [c for c in range(clubs) if c not in playing]
        playing = [*rng.permutation(playing)[3:], *rng.choice(rest, 3, replace=False)]
    return out


def test_new_members_are_usual_where_the_reference_s_batches_brought_them_too():
    """A league season brings 3 promoted clubs of 18 (1/6 of the matches are theirs); the
    reference's own seasons did so, so the next season's are new members, no alarm, not new
    codes upstream that quarantine it (the Bundesliga 1971-2008 was quarantined season
    after season, and its champion of 1970 never retrained). Clubs never seen in the numbers a
    recode brings still are an upstream change."""
    from retrainer.diagnosis import diagnose_batch

    seasons = _seasons(0, 5)
    frame = pd.concat(seasons[:4], ignore_index=True)
    schema = Schema.infer(frame)
    batch_of = np.repeat(np.arange(4), [len(s) for s in seasons[:4]])
    reference = BatchProfile.from_frame(frame, schema, batches=batch_of)
    assert reference.columns["home"].batch_new_max == pytest.approx(1 / 6, abs=0.01)

    def diagnosed(batch: pd.DataFrame):
        current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
        return diagnose_batch(check_quality(reference, current, schema), reference, current)

    d = diagnosed(seasons[4])
    assert not d.alarms  # new members, as every season brought: no alarm, trained on
    recoded = seasons[4].assign(home=lambda f: "FC " + f["home"])
    assert diagnosed(recoded).blocking
    # a backlog checks 8 files against one champion: a season 4 after the reference's newest
    # brings 4 seasons' promotions, as many as 4 seasons bring
    later = _seasons(0, 8)[7]
    current = BatchProfile.from_frame(later, schema, edges=reference.edges())
    assert float((~later["home"].isin(frame["home"])).mean()) > 0.25  # 5 of 18 clubs

    def blocking(since: int | None) -> bool:
        checks = check_quality(reference, current, schema, batches_since=since)
        return diagnose_batch(checks, reference, current).blocking

    assert not blocking(4) and blocking(None)
    pooled = BatchProfile.from_frame(frame, schema)  # no batches: as before, new codes
    current = BatchProfile.from_frame(seasons[4], schema, edges=pooled.edges())
    assert diagnose_batch(check_quality(pooled, current, schema), pooled, current).blocking


def test_rare_categories_a_small_reference_never_held_are_rare_members_not_new_codes():
    """ACS's school grades (SCHL: 25 codes, 11 of them at 1-1.4 % of people) against the day
    before, 90 rows: a day's unchanged rows held 10-16 % in codes those 90 rows lacked and were
    quarantined as "new codes upstream". Good-Turing's share of new ones, from the codes seen
    once and twice, expects it; a code the reference's size cannot explain still is new."""
    from retrainer.diagnosis import diagnose_batch

    shares = {"21": 18.4, "16": 17.4, "19": 11.1, "22": 10.0, "20": 5.7, "18": 4.8, "0": 2.6,
              "1": 2.6, "23": 2.3, "14": 2.3, "13": 2.2, "24": 2.2, "17": 2.2, "11": 1.9,
              "12": 1.8, "2": 1.4, "9": 1.4, "10": 1.4, "7": 1.3, "8": 1.3, "15": 1.2, "6": 1.1,
              "3": 1.1, "5": 1.1, "4": 1.0}  # fmt: skip
    codes, p = list(shares), np.array(list(shares.values())) / sum(shares.values())
    rng = np.random.default_rng(5)

    def day() -> pd.DataFrame:
        return pd.DataFrame({"SCHL": rng.choice(codes, 90, p=p), "age": rng.uniform(18, 90, 90)})

    reference_frame = day()
    schema = Schema.infer(reference_frame)
    reference = BatchProfile.from_frame(reference_frame, schema)

    def blocking(batch: pd.DataFrame) -> bool:
        current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
        return diagnose_batch(
            check_quality(reference, current, schema), reference, current
        ).blocking

    held = set(reference_frame["SCHL"])
    days = [day() for _ in range(40)]
    unseen = [float((~d["SCHL"].isin(held)).mean()) for d in days]
    assert max(unseen) >= 0.1  # as in the stream: days with a tenth of their rows in new codes
    assert sum(map(blocking, days)) == 0
    recoded = days[0].assign(SCHL=lambda f: f["SCHL"].where(f.index % 3 > 0, "SCHL-21"))
    assert blocking(recoded)


def test_the_loop_counts_the_batches_since_the_champion_s_window(make_project):
    """A backlog: the champion trained on 4 seasons, then 3 seasons arrive in one cycle; each
    is checked knowing how many batches after the champion's newest it is."""
    from sqlalchemy import select

    from retrainer.store.tables import CheckRow

    project = make_project(**REGRESSOR)
    start = pd.Timestamp("1990-08-01", tz="UTC")
    for k, season in enumerate(_seasons(1, 7)):
        if k == 4:
            project.cycle()  # the champion: seasons 1-4 (batches 1-4)
        stamped = season.assign(id=range(1000 * k, 1000 * k + len(season)),
                                timestamp=start + pd.Timedelta(days=365 * k))  # fmt: skip
        project.ingest(stamped.rename(columns={"goals": "target"}), key=f"s{k}")
    project.cycle()
    with project.store.session() as s:
        checks = s.scalars(
            select(CheckRow).where(CheckRow.name == "unseen_category", CheckRow.column == "home")
        ).all()
        since = {c.batch_id: c.detail["batches_since"] for c in checks}
    assert since == {5: 1, 6: 2, 7: 3}
