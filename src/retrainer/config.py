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
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` (or seconds as a number) into a timedelta.

    >>> parse_duration("2w")
    datetime.timedelta(days=14)
    """
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30m', '12h', '7d' or '2w'")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


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
    artifacts: str = ".retrainer/artifacts"


class DataSettings(_Section):
    target: str
    source: str | None = None
    labels: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    prediction: str | None = None
    features: list[str] | None = None
    schema_: dict[str, dict] | Literal["inferred"] = Field("inferred", alias="schema")


class WindowSettings(_Section):
    batches: int | None = Field(4, ge=1)
    days: float | None = Field(None, gt=0)
    all: bool = False


class TrainerSettings(_Section):
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] = "classification"
    window: WindowSettings = WindowSettings()
    min_rows: int = Field(100, ge=1)
    threads: int | None = Field(None, ge=1)  # cap native threads (OpenMP, BLAS) in a cycle

    @field_validator("estimator")
    @classmethod
    def _importable(cls, path: str) -> str:
        module, _, name = path.rpartition(".")
        if not module:
            example = "sklearn.tree.DecisionTreeClassifier"
            raise ValueError(f"{path!r} is not an import path like {example!r}")
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import {path!r}: {exc}") from None
        return path


class DriftSettings(_Section):
    alpha: float = Field(0.05, gt=0, lt=1)
    psi_threshold: float = Field(0.2, gt=0)
    share: float = Field(0.5, gt=0, le=1)
    min_rows: int = Field(30, ge=1)


class QualitySettings(_Section):
    max_null_increase: float = Field(0.1, ge=0, le=1)
    max_out_of_range: float = Field(0.05, ge=0, le=1)


class ConceptSettings(_Section):
    detector: Literal["ddm"] = "ddm"
    params: dict[str, Any] = Field(default_factory=dict)


class ChecksSettings(_Section):
    drift: DriftSettings = DriftSettings()
    quality: QualitySettings = QualitySettings()
    concept: ConceptSettings = ConceptSettings()


class TriggerSettings(_Section):
    type: Literal["schedule", "volume", "drift", "concept", "performance", "manual"]
    every: timedelta | None = None
    cron: str | None = None
    min_rows: int | None = Field(None, ge=1)
    columns: list[str] | None = None
    metric: str | None = None
    max_drop: float | None = Field(None, ge=0)
    min_value: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> TriggerSettings:
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


class GateSettings(_Section):
    metric: str = "accuracy"
    tolerance: float = Field(0.0, ge=0)
    holdout: float = Field(0.2, gt=0, lt=1)
    refit: bool = True

    @field_validator("metric")
    @classmethod
    def _known(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)}")
        return metric


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
    report: ReportSettings = ReportSettings()
    service: ServiceSettings = ServiceSettings()
    deploy_targets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    root: Path = Path(".")

    @field_validator("deploy_targets")
    @classmethod
    def _targets(cls, targets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from retrainer.deploy.tinyml.target import DeployTarget

        problems: list[str] = []
        for name, spec in targets.items():
            try:
                DeployTarget.from_dict(name, spec)
            except ConfigError as exc:
                problems += exc.problems
            except (TypeError, ValueError) as exc:
                problems.append(f"deploy_targets.{name}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return targets

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
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    loc = loc.replace("schema_", "schema")
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        msg = "field required"
    elif kind == "extra_forbidden":
        msg = "unknown key (check the spelling)"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return f"{loc or '(top)'}: {msg}"
