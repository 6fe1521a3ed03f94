"""The scenario suite: clean real streams with one cause injected at a known batch.

Each stream is a segment of a real data set with its rows shuffled into batches, so that
nothing changes between batches by construction (ELEC2 after the Victorian data starts, HAPT
smartphone sensor rows, ACS employment of Massachusetts in 2015). The first ``reference``
batches are the reference and train a model (its holdout error is the expected error); then
each step profiles the next batch, checks it, diagnoses it, and, one step later when its labels
arrive, tests the model's error on it, as the loop does. A scenario injects its cause into every
batch from step ``at`` on and records the first-ranked cause of the first step that raises one,
and the delay in batches. A no-change scenario injects nothing: every alarm is a false alarm.

Example:
    >>> stream = elec2_stream(rows=336 * 12)
    >>> result = run_scenario(stream, SCENARIOS["elec2-scale"], steps=4, at=1)
    >>> result.diagnosed, result.delay, result.false_alarms
    ('upstream_change', 0, 0)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from retrainer.checks.concept.sequential import baseline, error_rise
from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.quality import check_quality
from retrainer.data.schema import Schema, as_text
from retrainer.datasets import ELEC2_FEATURES, load_elec2
from retrainer.diagnosis.alarms import CAUSES, Diagnosis, rank
from retrainer.diagnosis.engine import diagnose_batch, relation_alarm, with_relation
from retrainer.diagnosis.joint import UNIT_CHECKS, reread
from retrainer.diagnosis.signals import batch_signals
from retrainer.profile import BatchProfile

DATA = Path(
    os.environ.get("RETRAINER_SHARED_DATA")
    or next(
        (p for p in (Path(__file__).resolve().parents[4] / "shared" / "data",) if p.is_dir()),
        Path("/work/shared/data"),
    )
)
ELEC2_REAL_FROM = 17_424  # first row with real Victorian values (SOURCES.md)
HAPT_FEATURES = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
EMPLOYMENT_FEATURES = [
    "AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY",
    "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
]  # fmt: skip


@dataclass(frozen=True)
class Stream:
    """Shuffled rows of a real data set, cut into batches of ``batch_rows``."""

    name: str
    frame: pd.DataFrame = field(repr=False)
    features: tuple[str, ...]
    target: str
    batch_rows: int
    reference: int = 4

    def batch(self, i: int) -> pd.DataFrame:
        """Batch ``i`` counted after the reference batches."""
        start = (self.reference + i) * self.batch_rows
        return self.frame.iloc[start : start + self.batch_rows].reset_index(drop=True)

    @property
    def reference_frame(self) -> pd.DataFrame:
        return self.frame.iloc[: self.reference * self.batch_rows].reset_index(drop=True)

    @property
    def n_batches(self) -> int:
        return len(self.frame) // self.batch_rows - self.reference

    def resized(self, batch_rows: int) -> Stream:
        """The same rows in batches of ``batch_rows``, with as many reference rows as before."""
        rows = self.reference * self.batch_rows
        return replace(self, batch_rows=batch_rows, reference=max(1, rows // batch_rows))


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    out = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return out.assign(id=np.arange(len(out)))


def elec2_stream(rows: int = 336 * 80, seed: int = 0) -> Stream:
    """ELEC2 rows after the Victorian data starts (row 17,424), shuffled, weekly-sized batches."""
    segment = load_elec2().iloc[ELEC2_REAL_FROM : ELEC2_REAL_FROM + rows]
    frame = _shuffled(segment[[*ELEC2_FEATURES, "target"]], seed)
    return Stream("elec2", frame, tuple(ELEC2_FEATURES), "target", 336)


@cache
def _hapt(rows: int) -> pd.DataFrame:
    raw = pd.read_csv(DATA / "hapt_accgyro_50hz.csv.gz", nrows=rows)
    return raw[raw["label"].between(1, 6)][[*HAPT_FEATURES, "label"]]


def hapt_stream(rows: int = 120_000, seed: int = 0) -> Stream:
    """HAPT smartphone accelerometer and gyroscope rows (users 1-4, activities 1-6), shuffled."""
    return Stream("hapt", _shuffled(_hapt(rows), seed), tuple(HAPT_FEATURES), "label", 400)


@cache
def _employment() -> pd.DataFrame:
    raw = pd.read_parquet(DATA / "employment_MA_reference.pq")
    frame = raw[[*EMPLOYMENT_FEATURES, "employed"]].copy()
    for name in EMPLOYMENT_FEATURES[1:]:
        frame[name] = as_text(frame[name].astype("object"))
    return frame


def employment_stream(seed: int = 0) -> Stream:
    """ACS employment rows of Massachusetts, 2015 (NannyML's reference set), shuffled."""
    return Stream(
        "employment", _shuffled(_employment(), seed), tuple(EMPLOYMENT_FEATURES), "employed", 1000
    )


# ------------------------------------------------------------------- timed (seasonal) streams
def seasonal_elec2(
    cycle: str, batches: int, rows: int, seed: int = 0, start: str = "2001-01-01"
) -> pd.DataFrame:
    """A seasonal ELEC2 stream with no change: a frame with ``id`` and ``timestamp`` columns
    for a replay, one batch per week (``cycle="yearly"``) or per day (``"weekly"``).

    Each batch draws ``rows`` real rows (after row 17,424) from the same time of the cycle:
    a weekly batch from the days within 3 days of its day of the year (any year), a daily batch
    from the same weekday (any season). So the inputs and labels follow the real yearly or
    weekly cycle of the market, and nothing else changes.

    Example:
        >>> frame = seasonal_elec2("weekly", batches=14, rows=30)
        >>> len(frame), frame["timestamp"].dt.day_of_week.nunique()
        (420, 7)
    """
    if cycle not in ("yearly", "weekly"):
        raise ValueError(f"cycle {cycle!r} is not 'yearly' or 'weekly'")
    elec = load_elec2().iloc[ELEC2_REAL_FROM:]
    rng = np.random.default_rng(seed)
    step = pd.Timedelta(days=7 if cycle == "yearly" else 1)
    begin = pd.Timestamp(start, tz="UTC")
    doy, weekday = elec["timestamp"].dt.day_of_year.to_numpy(), elec["timestamp"].dt.day_of_week
    parts = []
    for i in range(batches):
        at = begin + i * step
        if cycle == "yearly":
            gap = np.abs(doy - at.day_of_year)
            pool = np.flatnonzero(np.minimum(gap, 365 - gap) <= 3)
        else:
            pool = np.flatnonzero(weekday.to_numpy() == at.day_of_week)
        picked = elec.iloc[rng.choice(pool, size=rows, replace=False)]
        offsets = np.sort(rng.random(rows)) * step
        parts.append(picked[[*ELEC2_FEATURES, "target"]].assign(timestamp=at + offsets))
    frame = pd.concat(parts, ignore_index=True)
    return frame.assign(id=np.arange(len(frame)))


def timed(stream: Stream, batches: int, rows: int, start: str = "2001-01-01") -> pd.DataFrame:
    """The first ``batches * rows`` shuffled rows of a stream, one day per ``rows`` rows: an
    unchanged stream without any cycle, for a replay (``id``, ``timestamp`` columns)."""
    frame = stream.frame.iloc[: batches * rows].reset_index(drop=True)
    begin = pd.Timestamp(start, tz="UTC")
    times = begin + pd.to_timedelta(np.arange(len(frame)) // rows, unit="D")
    within = pd.to_timedelta((np.arange(len(frame)) % rows) * (86_000 // rows), unit="s")
    return frame.assign(timestamp=times + within, id=np.arange(len(frame)))


# ------------------------------------------------------------------------------ injections
Inject = Callable[[pd.DataFrame, "Stream", np.random.Generator], pd.DataFrame]


def _rows(batch: pd.DataFrame, share: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(len(batch), size=int(share * len(batch)), replace=False)


def _set(column: str, share: float, value) -> Inject:
    def inject(batch, stream, rng):
        out = batch.copy()
        out.loc[_rows(out, share, rng), column] = value
        return out

    return inject


def _rename(old: str, new: str) -> Inject:
    return lambda batch, stream, rng: batch.rename(columns={old: new})


def _scale(columns: tuple[str, ...], factor: float) -> Inject:
    return lambda batch, stream, rng: batch.assign(**{c: batch[c] * factor for c in columns})


def _retype(column: str) -> Inject:
    def inject(batch, stream, rng):
        return batch.assign(**{column: batch[column].map(lambda v: f"{v:.4f}".replace(".", ","))})

    return inject


def _recode(column: str, mapping: dict[str, str]) -> Inject:
    return lambda batch, stream, rng: batch.assign(**{column: batch[column].replace(mapping)})


def _duplicate(share: float) -> Inject:
    def inject(batch, stream, rng):
        n = int(share * len(batch))
        return pd.concat([batch.iloc[: len(batch) - n], batch.iloc[:n]], ignore_index=True)

    return inject


def _truncate(share: float) -> Inject:
    return lambda batch, stream, rng: batch.iloc[: int(share * len(batch))].reset_index(drop=True)


def _stuck(column: str, start: float) -> Inject:
    def inject(batch, stream, rng):
        out = batch.copy()
        first = int(start * len(out))
        out.loc[first:, column] = out[column].iloc[first]
        return out

    return inject


def _burst(column: str, share: float, size: float) -> Inject:
    def inject(batch, stream, rng):
        out = batch.copy()
        rows = _rows(out, share, rng)
        out.loc[rows, column] = (
            rng.choice([-1.0, 1.0], rows.size) * size * (1 + rng.random(rows.size))
        )
        return out

    return inject


def _flip(column: str, threshold: float) -> Inject:
    """Flip a binary label where ``column`` exceeds ``threshold``: a changed rule there."""

    def inject(batch, stream, rng):
        region = batch[column] > threshold
        return batch.assign(
            **{stream.target: np.where(region, 1 - batch[stream.target], batch[stream.target])}
        )

    return inject


def _rounded(column: str, step: float) -> Inject:
    """Readings rounded to ``step`` (a whole-number instrument), in the reference too."""
    return lambda batch, stream, rng: batch.assign(
        **{column: (batch[column] / step).round() * step}
    )


def _capped(column: str, quantile: float) -> Inject:
    """Readings capped at the instrument's maximum: the ``quantile`` of the column's values,
    so that ``1 - quantile`` of the rows sit at the cap (in the reference too)."""

    def inject(batch, stream, rng):
        cap = float(stream.frame[column].quantile(quantile))
        return batch.assign(**{column: batch[column].clip(upper=cap)})

    return inject


def _affine(column: str, factor: float, offset: float) -> Inject:
    """A unit change that is affine: ``x * factor + offset`` (Celsius to Fahrenheit: 1.8, 32)."""
    return lambda batch, stream, rng: batch.assign(**{column: batch[column] * factor + offset})


def _suffixed(column: str, unit: str) -> Inject:
    """Numbers sent as text with a unit (``"1014.7 hPa"``)."""
    return lambda batch, stream, rng: batch.assign(
        **{column: batch[column].map(lambda v: f"{v:.4f} {unit}")}
    )


def _few_wild(column: str, rows: int, times: float) -> Inject:
    """``rows`` rows (a fixed count, whatever the batch size) with impossible values, ``times``
    the column's largest reference value: an instrument fault."""

    def inject(batch, stream, rng):
        out = batch.copy()
        top = float(pd.to_numeric(stream.reference_frame[column]).abs().max())
        picked = rng.choice(len(out), size=min(rows, len(out)), replace=False)
        out.loc[picked, column] = times * top * (1 + rng.random(picked.size))
        return out

    return inject


def _all(*injections: Inject) -> Inject:
    def inject(batch, stream, rng):
        for one in injections:
            batch = one(batch, stream, rng)
        return batch

    return inject


def _flip_classes(a: int, b: int) -> Inject:
    """Labels ``a`` and ``b`` swapped: a region of input space now gets the other label."""
    return lambda batch, stream, rng: batch.assign(
        **{stream.target: batch[stream.target].replace({a: b, b: a})}
    )


def _rotate_labels(batch: pd.DataFrame, stream: Stream, rng) -> pd.DataFrame:
    """Activities 1-6 get the next activity's label: the same movements, other labels."""
    return batch.assign(**{stream.target: batch[stream.target] % 6 + 1})


def _shift(column: str, strength: float) -> Inject:
    """Draw the batch from the stream with weights rising with ``column``: the inputs move,
    every row keeps its real label, so the relation holds."""

    def inject(batch, stream, rng):
        pool = stream.frame.iloc[stream.reference * stream.batch_rows :]
        x = pd.to_numeric(pool[column], errors="coerce")
        z = ((x - x.mean()) / x.std()).fillna(0.0).to_numpy()
        weights = np.exp(strength * z)
        picked = rng.choice(len(pool), size=len(batch), replace=False, p=weights / weights.sum())
        return pool.iloc[picked].reset_index(drop=True)

    return inject


@dataclass(frozen=True)
class Scenario:
    """One cause injected into one stream (``cause=None``: nothing injected)."""

    name: str
    stream: str
    cause: str | None
    inject: Inject | None = field(default=None, repr=False)
    what: str = ""
    prepare: Inject | None = field(default=None, repr=False)  # applied to reference and batches


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "elec2-rename",
            "elec2",
            "upstream_change",
            _rename("nswdemand", "nswdemand_v2"),
            "nswdemand renamed nswdemand_v2",
        ),
        Scenario(
            "elec2-scale",
            "elec2",
            "upstream_change",
            _scale(("nswprice",), 1000.0),
            "nswprice x1000",
        ),
        Scenario(
            "elec2-retype",
            "elec2",
            "upstream_change",
            _retype("vicdemand"),
            "vicdemand sent as text with a decimal comma",
        ),
        Scenario(
            "elec2-default",
            "elec2",
            "upstream_change",
            _set("transfer", 0.3, -1.0),
            "transfer = -1 in 30% of rows",
        ),
        Scenario(
            "elec2-nulls",
            "elec2",
            "data_quality",
            _set("nswprice", 0.3, np.nan),
            "nswprice null in 30% of rows",
        ),
        Scenario(
            "elec2-inf",
            "elec2",
            "data_quality",
            _set("vicprice", 0.03, np.inf),
            "vicprice +inf in 3% of rows",
        ),
        Scenario(
            "elec2-duplicates", "elec2", "data_quality", _duplicate(0.3), "30% of rows sent twice"
        ),
        Scenario(
            "elec2-truncated",
            "elec2",
            "data_quality",
            _truncate(0.15),
            "only the first 15% of rows",
        ),
        Scenario(
            "elec2-flip",
            "elec2",
            "changed_relation",
            _flip("nswdemand", 0.45),
            "label flipped where nswdemand > 0.45",
        ),
        Scenario(
            "elec2-shift",
            "elec2",
            "covariate_drift",
            _shift("nswdemand", 1.0),
            "rows drawn towards high nswdemand",
        ),
        Scenario(
            "hapt-mg",
            "hapt",
            "upstream_change",
            _scale(("acc-x", "acc-y", "acc-z"), 1000.0),
            "accelerometer in milli-g (x1000)",
        ),
        Scenario(
            "hapt-stuck",
            "hapt",
            "data_quality",
            _stuck("acc-y", 0.4),
            "acc-y frozen from 40% of the batch on",
        ),
        Scenario(
            "hapt-burst",
            "hapt",
            "data_quality",
            _burst("gyro-x", 0.08, 30.0),
            "gyro-x spikes of +-30..60 rad/s in 8% of rows",
        ),
        Scenario(
            "hapt-relabel",
            "hapt",
            "changed_relation",
            _rotate_labels,
            "each activity gets the next one's label",
        ),
        Scenario(
            "hapt-shift",
            "hapt",
            "covariate_drift",
            _shift("acc-x", 1.0),
            "rows drawn towards high acc-x",
        ),
        Scenario(
            "employment-swap",
            "employment",
            "upstream_change",
            _recode("MAR", {"1": "3", "3": "1"}),
            "MAR codes 1 and 3 swapped (41% and 8% of rows)",
        ),
        Scenario(
            "employment-swap-close",
            "employment",
            "upstream_change",
            _recode("MAR", {"1": "5", "5": "1"}),
            "MAR codes 1 and 5 swapped (41% and 45%: nearly invisible)",
        ),
        Scenario(
            "employment-recode",
            "employment",
            "upstream_change",
            _recode("SCHL", {str(i): f"{i:02d}" for i in range(1, 10)}),
            "SCHL codes 1-9 written 01-09",
        ),
        Scenario(
            "employment-default",
            "employment",
            "upstream_change",
            _set("AGEP", 0.25, -1.0),
            "AGEP = -1 in 25% of rows",
        ),
        Scenario(
            "employment-nulls",
            "employment",
            "data_quality",
            _set("SCHL", 0.3, np.nan),
            "SCHL null in 30% of rows",
        ),
        Scenario(
            "employment-flip",
            "employment",
            "changed_relation",
            _flip("AGEP", 45.0),
            "employed flipped where AGEP > 45",
        ),
        Scenario(
            "employment-shift",
            "employment",
            "covariate_drift",
            _shift("AGEP", 1.0),
            "rows drawn towards older people",
        ),
        Scenario(
            "elec2-affine",
            "elec2",
            "upstream_change",
            _affine("nswdemand", 8000.0, 2000.0),
            "nswdemand sent in MW (x8000 + 2000) instead of normalised",
        ),
        Scenario(
            "hapt-affine",
            "hapt",
            "upstream_change",
            _affine("acc-x", 9.81, -9.81),
            "acc-x in m/s^2 without gravity (x9.81 - 9.81) instead of g",
        ),
        Scenario(
            "elec2-suffix",
            "elec2",
            "upstream_change",
            _suffixed("vicdemand", "GW"),
            'vicdemand sent as text with a unit ("0.4229 GW")',
        ),
        Scenario(
            "hapt-wild",
            "hapt",
            "data_quality",
            _few_wild("gyro-x", 2, 4.0),
            "2 rows of gyro-x at 4-8 times its largest reference value",
        ),
        Scenario(
            "elec2-wild",
            "elec2",
            "data_quality",
            _few_wild("nswprice", 2, 5.0),
            "2 rows of nswprice at 5-10 times its largest reference value",
        ),
        Scenario(
            "hapt-rounded-flip",
            "hapt",
            "changed_relation",
            _flip_classes(4, 5),
            "readings rounded to 0.1; sitting and standing labels swapped",
            prepare=_all(_rounded("acc-x", 0.1), _rounded("acc-y", 0.1), _rounded("acc-z", 0.1)),
        ),
        Scenario("elec2-none", "elec2", None, what="no change"),
        Scenario(
            "hapt-rounded-none",
            "hapt",
            None,
            what="no change; accelerometer readings rounded to 0.1 g throughout",
            prepare=_all(_rounded("acc-x", 0.1), _rounded("acc-y", 0.1), _rounded("acc-z", 0.1)),
        ),
        Scenario(
            "elec2-capped-none",
            "elec2",
            None,
            what="no change; nswprice capped (38% of rows at the cap) throughout",
            prepare=_capped("nswprice", 0.62),
        ),
        Scenario("hapt-none", "hapt", None, what="no change"),
        Scenario("employment-none", "employment", None, what="no change"),
    ]
}
# cases added for issue 13 (affine units, unit suffix, 2 wild values, rounded or capped
# readings): run by bench/decisions_real.py; the default suite keeps the earlier cases
ISSUE13 = frozenset(
    {
        "elec2-affine",
        "hapt-affine",
        "elec2-suffix",
        "hapt-wild",
        "elec2-wild",
        "hapt-rounded-flip",
        "hapt-rounded-none",
        "elec2-capped-none",
    }
)
STREAMS: dict[str, Callable[[], Stream]] = {
    "elec2": elec2_stream,
    "hapt": hapt_stream,
    "employment": employment_stream,
}


# ------------------------------------------------------------------------------ the runner
@dataclass(frozen=True)
class ScenarioResult:
    """What the diagnosis said: the first-ranked cause at the first alarm from step ``at`` on
    (within ``horizon`` steps; None when nothing was raised), its delay in batches, the alarms
    before ``at`` (false alarms) and the first-ranked cause of every step."""

    scenario: str
    cause: str | None
    diagnosed: str | None
    delay: int | None
    false_alarms: int
    steps: int
    tops: tuple[str | None, ...]
    columns: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()  # the rules behind the first-ranked cause (``scale``, ...)

    @property
    def right(self) -> bool:
        return self.diagnosed == self.cause

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "cause": self.cause,
            "diagnosed": self.diagnosed,
            "delay": self.delay,
            "false_alarms": self.false_alarms,
            "steps": self.steps,
            "tops": list(self.tops),
            "columns": list(self.columns),
            "checks": list(self.checks),
        }


class _Model:
    """A gradient-boosted model of the reference (categories as reference codes) and its
    holdout error: the champion the scenario's error stream is measured on."""

    def __init__(self, stream: Stream, schema: Schema):
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        self.schema = schema
        self.stream = stream
        ref = stream.reference_frame
        cut = int(0.8 * len(ref))
        self.model = HistGradientBoostingClassifier(max_iter=60, random_state=0)
        with threadpool_limits(limits=1):  # OpenMP threads on a shared machine spin
            self.model.fit(self.encode(ref.iloc[:cut]), ref[stream.target].iloc[:cut])
        holdout = ref.iloc[cut:]
        self.n_expected = len(holdout)
        self.expected = self.error(holdout)

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for spec in self.schema.columns:
            if spec.kind == "categorical":
                codes = {c: i for i, c in enumerate(spec.categories or ())}
                out[spec.name] = as_text(frame[spec.name]).map(codes).astype("float64")
            else:
                out[spec.name] = pd.to_numeric(frame[spec.name], errors="coerce")
        return pd.DataFrame(out)

    def error(self, frame: pd.DataFrame) -> float:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            predicted = self.model.predict(self.encode(frame))
        return float(np.mean(predicted != frame[self.stream.target].to_numpy()))


@cache
def _prepared(
    stream_name: str, batch_rows: int | None = None, seed: int = 0, prepare: Inject | None = None
) -> tuple[Stream, Schema, BatchProfile, _Model]:
    stream = STREAMS[stream_name](seed=seed)
    if batch_rows is not None:
        stream = stream.resized(batch_rows)
    if prepare is not None:
        rng = np.random.default_rng(seed)
        stream = replace(stream, frame=prepare(stream.frame, stream, rng))
    ref = stream.reference_frame[list(stream.features)]
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    return stream, schema, reference, _Model(stream, schema)


def diagnose_step(
    batch: pd.DataFrame,
    stream: Stream,
    schema: Schema,
    reference: BatchProfile,
) -> Diagnosis:
    """Profile, check and diagnose one batch against the reference, as a cycle with the
    default project file does (its drift options: Benjamini-Hochberg over the columns; far-out
    values and unit changes read again against related columns, ``diagnosis.joint``)."""
    from retrainer.config import ChecksSettings

    checks = ChecksSettings()
    features = [c for c in batch.columns if c not in (stream.target, "id", "timestamp")]
    current = BatchProfile.from_frame(batch[features], schema, edges=reference.edges())
    drift = check_drift(reference, current, **checks.drift.options())
    verdict = dataset_drift(drift, share=checks.drift.share)
    quality = check_quality(reference, current, schema, **checks.quality.model_dump())
    results = [*quality, *drift, verdict]
    numeric = [s.name for s in schema.columns if s.kind == "numeric"]
    signals = batch_signals(batch, numeric, keys=["id"], expected_rows=stream.batch_rows)
    found = diagnose_batch(results, reference, current, signals)
    bursts = [a for a in found.alarms if a.blocking and a.check == "out_of_range_burst"]
    if not bursts and not any(a.check in UNIT_CHECKS for a in found.alarms):
        return found
    sample = stream.reference_frame[features]
    alarms = reread(found.alarms, batch, reference.edges(), sample, bursts)
    return found if alarms == list(found.alarms) else rank(alarms, found.shift)


def run_scenario(
    stream: Stream | None,
    scenario: Scenario,
    *,
    steps: int = 10,
    at: int = 6,
    horizon: int = 3,
    seed: int = 0,
    batch_rows: int | None = None,
) -> ScenarioResult:
    """Run one scenario: ``steps`` batches (at most the stream's), the cause injected from step
    ``at`` on. ``seed`` shuffles the stream and draws the injection; ``batch_rows`` resizes
    the batches (the reference keeps its rows). Labels arrive one step late and feed the
    sequential relation test (``retrainer.checks.concept.sequential``) as in the loop."""
    prepared = _prepared(scenario.stream, batch_rows, seed, scenario.prepare)
    prepared_stream, schema, reference, model = prepared
    stream = stream or prepared_stream
    if stream.name != prepared_stream.name or len(stream.frame) != len(prepared_stream.frame):
        ref = stream.reference_frame[list(stream.features)]
        schema = Schema.infer(ref)
        reference = BatchProfile.from_frame(ref, schema)
        model = _Model(stream, schema)
    rng = np.random.default_rng(seed)
    steps = min(steps, stream.n_batches)
    p0 = baseline(model.expected)
    holdout = (model.n_expected, round(model.expected * model.n_expected))
    tops: list[str | None] = []
    previous: tuple[pd.DataFrame, Diagnosis] | None = None
    scored: list[tuple[int, int]] = []
    columns: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    for step in range(steps):
        batch = stream.batch(step)
        if scenario.inject is not None and step >= at:
            batch = scenario.inject(batch, stream, rng)
        diagnosis = diagnose_step(batch, stream, schema, reference)
        if previous is not None and not previous[1].blocking:
            labelled, before = previous
            error = model.error(labelled)
            scored.append((len(labelled), round(error * len(labelled))))
            alarm = relation_alarm(
                error, len(labelled), model.expected, model.n_expected,
                shift=before.shift, sequential=error_rise(scored, p0, holdout=holdout),
            )  # fmt: skip
            diagnosis = with_relation(diagnosis, alarm)
        tops.append(diagnosis.top)
        if step >= at and diagnosis.top and not columns:
            columns = diagnosis.causes[0].columns
            checks = tuple(
                dict.fromkeys(a.check for a in diagnosis.alarms if a.cause == diagnosis.top)
            )
        previous = (batch, diagnosis)
    start = at if scenario.inject is not None else steps
    found = [i for i in range(start, min(steps, start + horizon + 1)) if tops[i] is not None]
    false_alarms = sum(t is not None for t in tops[:start])
    return ScenarioResult(
        scenario.name,
        scenario.cause,
        tops[found[0]] if found else None,
        found[0] - start if found else None,
        false_alarms,
        steps,
        tuple(tops),
        columns,
        checks,
    )


def run_suite(
    names: list[str] | None = None,
    *,
    steps: int = 10,
    at: int = 6,
    quiet_steps: int = 40,
    seed: int = 0,
    batch_rows: int | None = None,
) -> list[ScenarioResult]:
    """Run the scenarios (by default all but the ``ISSUE13`` cases); no-change scenarios run
    ``quiet_steps`` batches."""
    results = []
    for name in names or [n for n in SCENARIOS if n not in ISSUE13]:
        scenario = SCENARIOS[name]
        n = quiet_steps if scenario.cause is None else steps
        results.append(
            run_scenario(None, scenario, steps=n, at=at, seed=seed, batch_rows=batch_rows)
        )
    return results


def confusion(results: list[ScenarioResult]) -> pd.DataFrame:
    """Counts of true cause (rows) x first-ranked diagnosed cause (columns, ``none`` when
    nothing was raised within the horizon)."""
    labels = [*CAUSES, "none"]
    table = pd.DataFrame(0, index=list(CAUSES), columns=labels)
    for r in results:
        if r.cause is not None:
            table.loc[r.cause, r.diagnosed or "none"] += 1
    return table


def elec2_fill_case(weeks_before: int = 4) -> Diagnosis:
    """The real upstream change of ELEC2: the week holding row 17,424, where real Victorian
    values replace the constant fill, diagnosed against the ``weeks_before`` weeks before it."""
    from retrainer.data.periods import split_periods

    elec = load_elec2()
    weeks = split_periods(elec, "timestamp", "7D")
    week = next(i for i, w in enumerate(weeks) if w["id"].iloc[-1] >= ELEC2_REAL_FROM)
    ref = pd.concat(weeks[week - weeks_before : week])[ELEC2_FEATURES]
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    stream = Stream("elec2-chronological", elec, tuple(ELEC2_FEATURES), "target", 336)
    return diagnose_step(weeks[week].reset_index(drop=True), stream, schema, reference)
