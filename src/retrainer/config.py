"""The project file (``retrainer.yaml``) turned into validated settings.

Every problem in a project file is reported at once, one line each, with its key path.

Example:
    >>> cfg = Config.from_dict({"data": {"target": "y"},
    ...                         "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier"}})
    >>> cfg.trainer.window.batches, cfg.gate.metric
    (4, 'accuracy')
    >>> Config.from_dict({"data": {}, "gate": {"metric": "acc"}})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: invalid project file <dict>:
      - data.target: field required
      - gate.metric: must be one of accuracy, balanced_accuracy, f1, roc_auc, mae, rmse, r2
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from retrainer.errors import ConfigError

METRICS = {  # name -> higher is better
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "roc_auc": True,
    "mae": False,
    "rmse": False,
    "r2": True,
}
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2")  # the first is the default of a regression project
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` (or seconds as a number) into a timedelta.

    >>> parse_duration("2w")
    datetime.timedelta(days=14)
    """
    match = None if isinstance(text, int | float) else _DURATION.match(str(text))
    if match is None and not isinstance(text, int | float):
        raise ValueError(f"{text!r} is not a duration like '30m', '12h', '7d' or '2w'")
    try:
        if match is None:
            return timedelta(seconds=float(text))
        return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def format_duration(span: timedelta) -> str:
    """A duration in words for messages: days from 2 days up, else hours, minutes or seconds,
    rounded to what a reader needs (a tenth below 10, else whole units).

    >>> from datetime import timedelta
    >>> format_duration(timedelta(days=245, hours=1)), format_duration(timedelta(days=7))
    ('245 days', '7 days')
    >>> format_duration(timedelta(hours=36)), format_duration(timedelta(minutes=90))
    ('36 hours', '1.5 hours')
    >>> format_duration(timedelta(seconds=1)), format_duration(-timedelta(days=3))
    ('1 second', '-3 days')
    """
    seconds = span.total_seconds()
    if seconds < 0:
        return f"-{format_duration(-span)}"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= (2 if unit == "day" else 1) * size:
            break
    else:
        unit, size = "second", 1
    amount = seconds / size
    amount = round(amount, 1 if amount < 10 else None)
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info) -> Any:
        field = cls.model_fields.get(info.field_name)
        is_duration = field is not None and field.annotation in (timedelta, timedelta | None)
        if is_duration and value is not None:
            return parse_duration(value)
        return value


class StoreSettings(_Section):
    url: str = "sqlite:///.retrainer/store.db"
    artifacts: str = ".retrainer/artifacts"  # a folder, or a URL (s3://bucket/artifacts)
    storage_options: dict[str, Any] = Field(default_factory=dict)  # of an artifacts URL

    @field_validator("artifacts")
    @classmethod
    def _artifacts_url(cls, location: str) -> str:
        return _known_url(location)


class FixSettings(_Section):
    """Fixes for upstream changes applied at ingest (see ``retrainer.diagnosis.fixes``)."""

    rename: dict[str, str] = Field(default_factory=dict)  # batch name -> schema name
    scale: dict[str, float] = Field(default_factory=dict)  # multiply by
    recode: dict[str, dict[str, str]] = Field(default_factory=dict)  # batch code -> reference code
    missing_values: dict[str, list[Any]] = Field(default_factory=dict)  # read as null
    parse_units: dict[str, dict[str, list[float]]] = Field(default_factory=dict)  # "1 hPa"->a*x+b
    affine: dict[str, list[float]] = Field(default_factory=dict)  # a*x+b (a unit change back)


class SqlSourceSettings(_Section):
    """``data.source`` as a mapping: new rows of a query after a watermark column, pulled
    exactly once (``retrainer.integrations.sql_source``); ``url`` may name ``${ENV_VARS}``."""

    sql: str  # binds :since to the greatest watermark stored
    url: str
    watermark: str  # the column
    start: int | float | datetime | date | str  # the first pull starts after it
    hold_last: bool = True  # keep the greatest value's rows until a greater one appears
    min_rows: int = Field(1, ge=1)  # pull nothing until this many rows are ready

    @field_validator("sql")
    @classmethod
    def _binds_since(cls, sql: str) -> str:
        if not re.search(r":since\b", sql):
            raise ValueError("the query must compare the watermark with :since")
        return sql


def _source_form(value: Any) -> str:
    return "union-sql" if isinstance(value, dict | SqlSourceSettings) else "union-path"


# a path, or a mapping for an SQL source (only the form given is validated and named)
SourceSetting = Annotated[
    Annotated[str, Tag("union-path")] | Annotated[SqlSourceSettings, Tag("union-sql")],
    Discriminator(_source_form),
]


class DataSettings(_Section):
    target: str
    source: SourceSetting | None = None
    labels: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    prediction: str | None = None
    features: list[str] | None = None
    schema_: dict[str, dict] | Literal["inferred"] = Field("inferred", alias="schema")
    expected_rows: dict[Literal["min", "max"], int] = Field(default_factory=dict)  # per batch
    fixes: FixSettings = FixSettings()
    timezone: str | None = None  # the zone of times written without an offset, e.g. Europe/Zurich
    encoding: str = "utf-8"  # of CSV files, e.g. latin-1 or cp1252
    storage_options: dict[str, Any] = Field(default_factory=dict)  # of source/labels URLs

    @field_validator("source", "labels")
    @classmethod
    def _source_url(cls, location: Any) -> Any:
        return _known_url(location)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {zone!r} (e.g. UTC, Europe/Zurich)") from None
        return zone

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1)") from None
        return encoding


def _known_url(location: Any) -> Any:
    """A URL setting (``s3://...``) whose scheme fsspec knows and can open here; other values
    as they are."""
    from retrainer.integrations.storage import check_url, is_url

    return check_url(location) if is_url(location) else location


class RunSettings(_Section):
    """``retrainer run``: a backlog of files is worked through this many batch files (and as
    many label files) per cycle. One, as live: a cycle retrains at most once, so with more a
    backlog is retrained less often than its triggers ask (a weekly schedule on monthly files,
    8 a cycle: once every 8 months)."""

    max_batches_per_cycle: int = Field(1, ge=1)


class WindowSettings(_Section):
    """The batches a retrain trains on: the last ``batches`` (4 when neither is given), the
    last ``days`` of data time, or with both the longer of the two (``days`` then read only
    with a time column: a backlog arrives at one moment); ``all``; and reaching back until
    ``min_rows`` labelled rows."""

    batches: int | None = Field(None, ge=1)
    days: float | None = Field(None, gt=0)
    all: bool = False
    # reach back over older batches until the window holds this many labelled rows (small
    # batches: 4 batches of 30 rows train a model on 120 rows and gate it on 24)
    min_rows: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _four_batches_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("batches") is None and data.get("days") is None:
            return {**data, "batches": 4}
        return data


class TrainerSettings(_Section):
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] = "classification"
    window: WindowSettings = WindowSettings()
    min_rows: int = Field(100, ge=1)
    threads: int | None = Field(None, ge=1)  # cap native threads (OpenMP, BLAS) in a cycle
    # several challengers: a grid over the estimator's params, and other estimators; the best
    # on a validation slice (the end of the training rows) goes to the gate
    search: dict[str, list[Any]] = Field(default_factory=dict)  # param -> values to try
    candidates: list[CandidateSettings] = Field(default_factory=list)
    validation: float = Field(0.2, gt=0, lt=1)  # share of the training rows that picks the best

    @field_validator("estimator")
    @classmethod
    def _importable(cls, path: str) -> str:
        return _importable(path)

    @field_validator("search")
    @classmethod
    def _grid(cls, search: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = sorted(name for name, values in search.items() if not values)
        if empty:
            raise ValueError(f"give at least one value to try for {', '.join(empty)}")
        size = 1
        for values in search.values():
            size *= len(values)
        if size > MAX_CHALLENGERS:
            raise ValueError(f"the grid has {size} points; at most {MAX_CHALLENGERS}")
        return search


MAX_CHALLENGERS = 64


def _importable(path: str) -> str:
    """Check that ``path`` names a class of an installed module. A module whose source mentions
    the name is accepted without running it (importing scikit-learn takes seconds, and commands
    that only read the store need no estimator; training imports it and says if it fails);
    otherwise the module is imported to decide.

    >>> _importable("sklearn.tree.DecisionTreeClassifier")
    'sklearn.tree.DecisionTreeClassifier'
    >>> _importable("sklearn.tree.DecisionTreeClasifier")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: cannot import 'sklearn.tree.DecisionTreeClasifier': ... no attribute ...
    """
    module, _, name = path.rpartition(".")
    if not module:
        example = "sklearn.tree.DecisionTreeClassifier"
        raise ValueError(f"{path!r} is not an import path like {example!r}")
    spec = _module_spec(module)
    origin = spec.origin if spec is not None else None
    if origin and origin.endswith(".py") and module not in sys.modules:
        source = Path(origin).read_text(encoding="utf-8", errors="replace")
        if re.search(rf"\b{re.escape(name)}\b", source):
            return path
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    return path


def _module_spec(dotted: str) -> importlib.machinery.ModuleSpec | None:
    """Where module ``dotted`` is, found without running its packages' ``__init__``."""
    parts = dotted.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                return None
            name = ".".join(parts[: i + 1])
            spec = importlib.machinery.PathFinder.find_spec(
                name, list(spec.submodule_search_locations)
            )
    except (ImportError, ValueError):
        return None
    return spec


class CandidateSettings(_Section):
    """One more challenger: an estimator by import path and its constructor params."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _importable(cls, path: str) -> str:
        return _importable(path)


class ComputeSettings(_Section):
    """Where large inputs are profiled and challengers trained: ``local`` (this process; large
    inputs one row group at a time) or ``dask`` (a cluster at ``scheduler``, or a LocalCluster of
    ``workers`` processes x ``threads_per_worker`` started for the job when it is None)."""

    backend: Literal["local", "dask"] = "local"
    scheduler: str | None = None  # tcp://host:8786
    workers: int | None = Field(None, ge=1)  # LocalCluster only (default: one per core)
    threads_per_worker: int = Field(1, ge=1)  # LocalCluster only

    @model_validator(mode="after")
    def _dask_parts(self) -> ComputeSettings:
        if self.backend == "local" and self.scheduler is not None:
            raise ValueError("'scheduler' needs 'backend: dask'")
        if self.backend == "dask" and importlib.util.find_spec("distributed") is None:
            raise ValueError("backend dask needs Dask: pip install 'retrainer[dask]'")
        return self


class ReferenceSettings(_Section):
    """What a batch's drift check compares with (``retrainer.checks.reference``): the champion's
    training window (``fixed``), the batches of the last ``window`` (``rolling``), or those
    within ``window`` around one ``period`` ago (``seasonal``)."""

    kind: Literal["fixed", "rolling", "seasonal"] = "fixed"
    window: timedelta = timedelta(days=28)
    period: timedelta | None = None
    # fewer rows chosen: seasonal -> rolling -> fixed (keep it below what a window usually
    # holds: batches vary in size, and a window that holds about min_rows falls back when one
    # comes in short)
    min_rows: int = Field(200, ge=1)
    periods: int = Field(1, ge=1)  # seasonal: the same season in each of the last n periods

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceSettings:
        if self.window <= timedelta(0):
            raise ValueError("window must be longer than 0 (e.g. 28d)")
        if self.kind == "seasonal" and self.period is None:
            raise ValueError("a seasonal reference needs 'period' (e.g. 365d or 7d)")
        if self.kind != "seasonal" and self.period is not None:
            raise ValueError(f"'period' applies to kind: seasonal only, not kind: {self.kind}")
        if self.period is not None and self.window >= self.period:
            raise ValueError(
                f"window ({self.window.total_seconds() / 86400:g}d) must be shorter than period "
                f"({self.period.total_seconds() / 86400:g}d), or the season a period ago "
                "overlaps the present"
            )
        return self


class DriftSettings(_Section):
    alpha: float = Field(0.05, gt=0, lt=1)
    psi_threshold: float = Field(0.2, gt=0)
    share: float = Field(0.5, gt=0, le=1)
    batch_alpha: float = Field(0.01, gt=0, lt=1)  # dataset verdict's false alarms per batch
    min_rows: int = Field(30, ge=1)
    min_psi: float = Field(0.02, ge=0)  # effect floor of a significant p-value test
    method: str | dict[str, str] = "auto"  # or a test name, or {numeric: ..., categorical: ...}
    correction: Literal["none", "bonferroni", "bh"] = "bh"  # over the columns' p-values
    small: int = Field(1000, ge=1)  # auto: p-value tests up to this many values, distances above
    sensitivity: Literal["effect", "significance"] = "effect"  # significance: p-values at any n
    thresholds: dict[str, float] = Field(default_factory=dict)  # distance test -> threshold
    reference: ReferenceSettings = ReferenceSettings()

    @field_validator("method")
    @classmethod
    def _known_test(cls, method: str | dict[str, str]) -> str | dict[str, str]:
        from retrainer.checks.univariate import TESTS

        names = method.values() if isinstance(method, dict) else [method]
        unknown = sorted(set(names) - set(TESTS) - {"auto"})
        if unknown:
            raise ValueError(f"unknown drift test {unknown}; one of auto, {', '.join(TESTS)}")
        return method

    def options(self) -> dict:
        """The keyword options of ``check_drift`` (not the dataset verdict's or reference)."""
        return self.model_dump(exclude={"share", "batch_alpha", "reference"})


class QualitySettings(_Section):
    max_null_increase: float = Field(0.1, ge=0, le=1)
    max_out_of_range: float = Field(0.05, ge=0, le=1)
    stuck_run: int = Field(20, ge=2)  # a value repeated in this many consecutive rows is stuck


class ConceptSettings(_Section):
    """The error-stream detector (any name of ``retrainer.checks.concept.DETECTORS``, any case),
    its parameters, the loss a regressor feeds it, and optionally a threshold calibrated on the
    champion's held-out errors to ``arl`` values between false alarms (bootstrap)."""

    detector: str = "DDM"
    params: dict[str, Any] = Field(default_factory=dict)
    loss: Literal["absolute", "squared"] = "absolute"
    arl: int | None = Field(None, ge=10)

    @model_validator(mode="after")
    def _known_detector(self) -> ConceptSettings:
        from retrainer.checks.concept import DETECTORS

        names = {name.lower(): name for name in DETECTORS}
        name = names.get(self.detector.lower().replace("-", "").replace("_", ""))
        if name is None:
            raise ValueError(f"detector {self.detector!r} is not one of {', '.join(DETECTORS)}")
        try:
            DETECTORS[name](**self.params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} refused params {self.params}: {exc}") from None
        object.__setattr__(self, "detector", name)
        return self


class SampleSettings(_Section):
    """The reference sample each version keeps (``retrainer.checks.sample``) and the checks that
    read it per batch: prediction drift, target drift and one multivariate check."""

    rows: int = Field(5000, ge=0)  # rows of the gate holdout kept; 0 keeps none (checks off)
    prediction: bool = True
    target: bool = True
    multivariate: Literal["mmd", "domain_classifier", "pca_reconstruction", "none"] = "mmd"
    multivariate_rows: int = Field(500, ge=20)  # rows of each side the multivariate check reads


class ChecksSettings(_Section):
    drift: DriftSettings = DriftSettings()
    quality: QualitySettings = QualitySettings()
    concept: ConceptSettings = ConceptSettings()
    sample: SampleSettings = SampleSettings()


class TriggerSettings(_Section):
    type: Literal[
        "schedule", "volume", "drift", "concept", "performance", "manual", "group", "cost"
    ]
    every: timedelta | None = None
    cron: str | None = None
    min_rows: int | None = Field(None, ge=1)
    columns: list[str] | None = None
    metric: str | None = None  # performance: gate.metric, the only score a version keeps
    max_drop: float | None = Field(None, ge=0)  # in the metric's units, or "10%" of its score
    relative_drop: bool = False  # max_drop is a share of the champion's holdout score
    min_value: float | None = None
    source: Literal["realised", "estimated"] = "realised"  # performance: labels or estimate
    alpha: float = Field(0.01, gt=0, lt=0.5)  # performance: a drop's one-sided test level
    mode: Literal["any", "all"] = "any"  # group: how its triggers combine
    triggers: list[TriggerSettings] | None = None  # group: its triggers

    @model_validator(mode="before")
    @classmethod
    def _percent(cls, data: Any) -> Any:
        """``max_drop: 10%``: a rise of a loss by a tenth of the champion's (mae in dollars or
        mg/dL has no unit-free drop), read as ``max_drop: 0.1, relative_drop: true``."""
        drop = data.get("max_drop") if isinstance(data, dict) else None
        if not isinstance(drop, str) or not drop.strip().endswith("%"):
            return data
        try:
            share = float(drop.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"max_drop {drop!r} is no percentage such as 10%") from None
        return {**data, "max_drop": share, "relative_drop": True}

    @model_validator(mode="after")
    def _complete(self) -> TriggerSettings:
        if self.type == "group" and not self.triggers:
            raise ValueError("a group trigger needs 'triggers' (a list of triggers)")
        if self.type == "schedule" and not (self.every or self.cron):
            raise ValueError("a schedule trigger needs 'every' (e.g. 7d) or 'cron'")
        if self.type == "volume" and not self.min_rows:
            raise ValueError("a volume trigger needs 'min_rows'")
        if self.type == "performance" and self.max_drop is None and self.min_value is None:
            raise ValueError("a performance trigger needs 'max_drop' or 'min_value'")
        if self.cron:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise ValueError(f"{self.cron!r} is not a valid cron expression")
        return self


class PolicySettings(_Section):
    triggers: list[TriggerSettings] = Field(
        default_factory=lambda: [
            TriggerSettings(type="drift"),
            TriggerSettings(type="concept"),
            TriggerSettings(type="manual"),
        ]
    )
    cooldown: timedelta | None = None
    block_on: list[Literal["data_quality", "upstream_change"]] = ["data_quality", "upstream_change"]
    # covariate drift diagnosed: "triggers" leaves it to a drift trigger, "retrain" retrains,
    # "watch" never retrains on it (a drift trigger's reason is then suppressed)
    on_covariate_drift: Literal["triggers", "retrain", "watch"] = "triggers"
    mode: Literal["any", "all"] = "any"  # how the triggers combine
    budget: BudgetSettings | None = None  # at most N retrains per period
    dedup: timedelta | None = None  # the same alarm retrains at most once in this window
    min_new_rows: int | None = Field(None, ge=1)  # new labelled rows needed before any retrain
    quiet_after_deploy: timedelta | None = None  # no retrain this soon after a promotion
    # what a retrain costs, in wrong predictions (or money per retrain and per error); with a
    # cost and no triggers listed, the cost trigger decides (retrainer.triggers.CostTrigger)
    cost: CostSettings | None = None
    # a shadow candidate fitted on the window before every newly labelled batch and scored on it
    # (not registered, gated or deployed): the fresh model's errors the cost trigger compares
    # the champion with; None: on when a cost is given (retrainer.cycle)
    shadow: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _cost_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cost") is not None and "triggers" not in data:
            data = {**data, "triggers": [{"type": "cost"}, {"type": "manual"}]}
        return data

    @model_validator(mode="after")
    def _cost_needed(self) -> PolicySettings:
        if self.cost is None and any(t.type == "cost" for t in self.triggers):
            raise ValueError("a cost trigger needs policy.cost (e.g. cost: {retrain: 500})")
        if self.shadow and self.cost is None:
            raise ValueError(
                "policy.shadow needs policy.cost: only the cost trigger reads shadow candidates"
            )
        return self

    @property
    def shadows(self) -> bool:
        """Whether the loop fits a shadow candidate for each newly labelled batch."""
        return self.cost is not None if self.shadow is None else self.shadow


class CostSettings(_Section):
    """``{retrain: 500}``: one retrain is worth 500 wrong predictions; or money: ``{retrain:
    200, error: 0.5}`` (200 per retrain, 0.5 per wrong prediction: 400 errors a retrain). A
    regressor's errors are the gate metric's row errors: with ``gate.metric: mae`` one retrain
    is worth 500 of absolute error summed over predictions (in the target's unit), with
    ``rmse`` 500 of squared error."""

    retrain: float = Field(gt=0)
    error: float = Field(1.0, gt=0)

    @property
    def errors(self) -> float:
        """The retrain cost in wrong predictions."""
        return self.retrain / self.error


class BudgetSettings(_Section):
    max_retrains: int = Field(ge=1)
    per: timedelta


class GateSettings(_Section):
    metric: str = "accuracy"
    tolerance: float = Field(0.0, ge=0)
    holdout: float = Field(0.2, gt=0, lt=1)
    refit: bool = True
    sandbox: bool = True  # load and score the models in an isolated child (retrainer.sandbox)
    # the paired comparison (retrainer.gate): one-sided confidence, fewest rows to tell, and
    # what an inconclusive comparison does
    confidence: float = Field(0.95, gt=0.5, lt=1)
    min_rows: int = Field(30, ge=1)
    on_inconclusive: Literal["promote", "keep"] = "promote"

    def options(self) -> dict:
        """The keyword arguments of ``retrainer.gate.evaluate_gate``."""
        return self.model_dump(
            include={"metric", "tolerance", "confidence", "min_rows", "on_inconclusive"}
        )

    @field_validator("metric")
    @classmethod
    def _known(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)}")
        return metric


class QuarantineSettings(_Section):
    # a blocking condition (cause, rule, column) seen in this many consecutive batches is the
    # new normal: "alert" keeps quarantining and says so once, "adopt" releases its batches,
    # stops quarantining it and asks for a retrain (retrainer.quarantine)
    persist_batches: int = Field(6, ge=2)
    on_persist: Literal["alert", "adopt"] = "alert"


class ReportSettings(_Section):
    baseline: Literal["first", "none"] = "first"


WEBHOOK_EVENTS = ("alarm", "decision", "version", "promotion", "rollback")


class ServiceScheduleSettings(_Section):
    """When ``retrainer serve`` runs cycles: on a schedule (``every`` or ``cron``), on arriving
    data, or both; ``catch_up`` says what happens to slots missed while the service was down."""

    every: timedelta | None = None
    cron: str | None = None
    catch_up: Literal["one", "skip"] = "one"
    grace: timedelta = timedelta(seconds=60)  # a slot seen later than this counts as missed
    on_data: bool = True  # run a cycle when batches, labels or a retrain request arrive
    min_gap: timedelta = timedelta(seconds=10)  # between two data-driven cycles
    tick: timedelta = timedelta(seconds=1)
    lease: timedelta = timedelta(seconds=30)
    max_retries: int = Field(1, ge=0)  # retries of an interrupted slot or run

    @model_validator(mode="after")
    def _one_schedule(self) -> ServiceScheduleSettings:
        if self.every is not None and self.cron is not None:
            raise ValueError("give 'every' or 'cron', not both")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("'every' must be positive")
        if self.cron is not None:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise ValueError(f"{self.cron!r} is not a valid cron expression")
        if self.lease <= self.tick:
            raise ValueError("'lease' must be longer than 'tick'")
        return self


class WebhookSettings(_Section):
    """One webhook: events POSTed as JSON, signed with HMAC-SHA256 (secret read from the
    environment variable ``secret_env``). Private and loopback addresses are refused unless
    ``allow_private`` is true."""

    url: str
    events: list[Literal["alarm", "decision", "version", "promotion", "rollback"]] = Field(
        default_factory=lambda: list(WEBHOOK_EVENTS)
    )
    secret_env: str
    allow_private: bool = False
    max_attempts: int = Field(6, ge=1)
    backoff: timedelta = timedelta(seconds=2)
    timeout: timedelta = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} must be an http:// or https:// URL with a host")
        return url


class RegistrySettings(_Section):
    """Where versions and aliases are mirrored besides retrainer's own registry (the source of
    truth): ``backend: mlflow`` logs runs and mirrors versions and aliases to MLflow
    (:mod:`retrainer.integrations.mlflow_registry`)."""

    backend: Literal["retrainer", "mlflow"] = "retrainer"
    tracking_uri: str | None = None
    model_name: str | None = None  # the MLflow registered model; default: the project name

    @model_validator(mode="after")
    def _mlflow_ready(self) -> RegistrySettings:
        if self.backend == "mlflow":
            if not self.tracking_uri:
                raise ValueError("backend mlflow needs tracking_uri (e.g. http://127.0.0.1:5000)")
            if importlib.util.find_spec("mlflow") is None:
                raise ValueError("backend mlflow needs MLflow: pip install 'retrainer[mlflow]'")
        return self


class ServiceSettings(_Section):
    """The ``retrainer serve`` process: where it listens, its schedule and its webhooks."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    allowed_hosts: list[str] = Field(default_factory=list)  # Host headers besides the bound one
    max_upload_mb: float = Field(64.0, gt=0)
    schedule: ServiceScheduleSettings = ServiceScheduleSettings()
    webhooks: list[WebhookSettings] = Field(default_factory=list)


class Config(_Section):
    """Validated settings of one project. Relative paths are resolved against ``root``."""

    project: str = "retrainer"
    store: StoreSettings = StoreSettings()
    data: DataSettings
    trainer: TrainerSettings = TrainerSettings(
        estimator="sklearn.ensemble.HistGradientBoostingClassifier"
    )
    checks: ChecksSettings = ChecksSettings()
    policy: PolicySettings = PolicySettings()
    gate: GateSettings = GateSettings()
    quarantine: QuarantineSettings = QuarantineSettings()
    report: ReportSettings = ReportSettings()
    service: ServiceSettings = ServiceSettings()
    compute: ComputeSettings = ComputeSettings()
    run: RunSettings = RunSettings()
    registry: RegistrySettings = RegistrySettings()
    deploy_targets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    root: Path = Path(".")

    @field_validator("deploy_targets")
    @classmethod
    def _targets(cls, targets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from retrainer.deploy.tinyml.target import DeployTarget

        problems: list[str] = []
        for name, spec in targets.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
                problems.append(
                    f"deploy_targets.{name}: a target name is letters, digits, "
                    "'.', '_' and '-' (at most 64)"
                )
                continue
            try:
                DeployTarget.from_dict(name, spec)
            except ConfigError as exc:
                problems += exc.problems
            except (TypeError, ValueError) as exc:
                problems.append(f"deploy_targets.{name}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return targets

    @model_validator(mode="after")
    def _detector_fits_task(self) -> Config:
        from retrainer.checks.concept import DETECTORS

        name = self.checks.concept.detector
        if self.trainer.task == "regression" and DETECTORS[name]._binary:
            loss = [n for n, cls in DETECTORS.items() if not cls._binary]
            raise ValueError(
                f"checks.concept.detector: {name} reads a 0/1 error stream, but a regressor's "
                f"stream is its {self.checks.concept.loss} error; use one of {', '.join(loss)}"
            )
        return self

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Config:
        fits = REGRESSION_METRICS if self.trainer.task == "regression" else CLASSIFICATION_METRICS
        if self.gate.metric in fits:
            return self
        if "metric" not in self.gate.model_fields_set:
            object.__setattr__(self.gate, "metric", fits[0])
            return self
        raise ValueError(
            f"gate.metric: {self.gate.metric} does not score a {self.trainer.task} model; "
            f"use one of {', '.join(fits)}"
        )

    @model_validator(mode="after")
    def _trigger_metric_is_the_gates(self) -> Config:
        # the performance trigger compares a batch's score with the champion's holdout score,
        # and a version keeps that score (and each batch is scored) in gate.metric only
        def walk(triggers: list[TriggerSettings], at: str) -> list[str]:
            problems = []
            for i, t in enumerate(triggers):
                where = f"{at}[{i}]"
                if t.metric is not None and t.metric != self.gate.metric:
                    problems.append(
                        f"{where}.metric: {t.metric} is not gate.metric ({self.gate.metric}); "
                        f"the performance trigger reads the batches' and the champion's "
                        f"holdout score in gate.metric only, so drop 'metric' or set "
                        f"gate.metric: {t.metric}"
                    )
                problems += walk(t.triggers or [], f"{where}.triggers")
            return problems

        problems = walk(self.policy.triggers, "policy.triggers")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _cost_fits_task(self) -> Config:
        regressor = self.trainer.task == "regression"
        if regressor and self.policy.cost is not None and self.gate.metric not in ("mae", "rmse"):
            raise ValueError(
                "policy.cost prices a regressor's retrain in the gate metric's row errors, "
                f"absolute (gate.metric: mae) or squared (rmse); {self.gate.metric} is not a sum "
                "of row errors, so set gate.metric: mae or rmse, or drop policy.cost"
            )
        return self

    def targets(self) -> list:
        """The deploy targets (microcontrollers) every promoted model must fit."""
        from retrainer.deploy.tinyml.target import DeployTarget

        return [DeployTarget.from_dict(n, s) for n, s in self.deploy_targets.items()]

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>", root: Path | None = None) -> Config:
        """Validate a parsed project file; raise ConfigError listing every problem."""
        if not isinstance(data, dict):
            raise ConfigError([f"the file must hold a mapping, not {type(data).__name__}"], source)
        data = dict(data, root=root or Path(data.get("root", ".")))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError([_describe(err) for err in exc.errors()], source) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        """Read and validate a project file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"cannot read the file: {exc.strerror}"], str(path)) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
        return cls.from_dict(data, source=str(path), root=path.resolve().parent)

    def resolve(self, path: str) -> Path:
        """A path from the project file, relative to the file's folder."""
        return (self.root / path).resolve()

    @property
    def store_url(self) -> str:
        """The store URL with a relative SQLite path resolved against the project folder."""
        url = self.store.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + str(self.resolve(url.removeprefix("sqlite:///")))
        return url


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "union-")))
    loc = loc.replace("schema_", "schema")
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        msg = "field required"
    elif kind == "extra_forbidden":
        msg = "unknown key (check the spelling)"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    if not loc and re.match(r"[a-z_]+(\.[a-z_]+|\[\d+\])+: ", msg):
        return msg  # a check across sections names its key path itself
    return f"{loc or '(top)'}: {msg}"
