"""Mirror retrainer's registry to MLflow: runs, model versions and the champion alias.

With ``registry: {backend: mlflow, tracking_uri: ...}`` in the project file, every finished
retraining run is logged to MLflow tracking (parameters, training window, gate metrics, the
cycle's drift summary, the decision's reasons as tags), every registered version becomes a
version of the MLflow registered model, and retrainer's aliases (``champion``, ``challenger``)
are set as MLflow registered-model aliases, so a serving system that loads
``models:/<name>@champion`` follows retrainer's promotions and rollbacks.

Retrainer's own registry stays the source of truth; MLflow is a mirror. :meth:`MlflowMirror.sync`
reconciles MLflow with retrainer's store (what is missing is added, aliases are moved to where
retrainer's point), so it is idempotent and can be retried at any time. It runs after every
alias move and at the end of every cycle. When MLflow cannot be reached the sync does **not**
fail the cycle and never touches retrainer's registry: it records a pending sync (state row
``mlflow`` and an ``mlflow_pending`` event naming the error), and the next sync (the next
cycle, promotion or rollback) catches up. A serving system then keeps the previous champion
until MLflow is back, never a version retrainer did not promote.

Models are logged with MLflow's scikit-learn flavour in its ``skops`` serialization format
(never pickle): the ``model.skops`` file holds data only, and its trusted-types list is exactly
the types retrainer's own allowlist verified. Any MLflow client can load it
(``mlflow.pyfunc.load_model("models:/name@champion")``) without retrainer installed.

:func:`import_champion` adopts an existing MLflow model as the first champion. It never lets
MLflow deserialize the model: a ``skops`` model is loaded through retrainer's allowlist; a
``pickle``/``cloudpickle`` model (MLflow's default before 3.x) can run any code when loaded,
so it is refused unless the caller passes ``trust_pickle=True``.

Example (retrainer's tags on an MLflow run; the server part is in the tests):
    >>> run_tags({"reasons": ["drift: x", "schedule"]}, status="succeeded", run_id=3)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'retrainer.run_id': '3', 'retrainer.status': 'succeeded', 'retrainer.reason.1': 'drift: x',
     'retrainer.reason.2': 'schedule', 'retrainer.reasons': 'drift: x; schedule'}
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from retrainer.errors import RetrainerError, StoreError, UnsafeArtifactError
from retrainer.registry import Registry
from retrainer.store.tables import (
    AliasRow,
    CheckRow,
    DecisionRow,
    EventRow,
    ModelVersionRow,
    RunRow,
    StateRow,
    utcnow,
)

__all__ = ["MlflowMirror", "SyncResult", "import_champion", "run_tags"]

EXTRA = "pip install 'retrainer[mlflow]'"
STATE_KEY = "mlflow"
RUN_TAG, VERSION_TAG, ARTIFACT_TAG = "retrainer.run_id", "retrainer.version", "retrainer.artifact"
_MAX_TAG = 5000  # MLflow keeps tag values up to 8000 characters
_MAX_PARAM = 500
_KEY_RE = re.compile(r"[^A-Za-z0-9_\-. /]")
_ALIAS_RE = re.compile(r"[A-Za-z0-9_\-]{1,255}")
_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>\d+))$")
_FINISHED = ("succeeded", "rejected", "skipped", "failed")
_STATUS = {"succeeded": "FINISHED", "rejected": "FINISHED", "skipped": "FINISHED"}


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise RetrainerError(f"the MLflow registry backend needs MLflow: {EXTRA}") from None
    return mlflow


def _key(text: str) -> str:
    """An MLflow param/metric key: letters, digits and ``_ - . / space`` only."""
    return _KEY_RE.sub("_", str(text))[:250]


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def run_tags(decision: dict, *, status: str, run_id: int) -> dict[str, str]:
    """The tags of one run: its id, status and the decision's reasons (one tag each, and all
    of them joined)."""
    reasons = [str(r) for r in decision.get("reasons") or []]
    tags = {RUN_TAG: str(run_id), "retrainer.status": status}
    tags |= {f"retrainer.reason.{i}": r[:_MAX_TAG] for i, r in enumerate(reasons, 1)}
    if reasons:
        tags["retrainer.reasons"] = "; ".join(reasons)[:_MAX_TAG]
    return tags


def mlflow_alias_ok(name: str) -> bool:
    """Whether MLflow can hold a retrainer alias: letters, digits, ``_`` and ``-``, and not
    ``latest`` or ``v<number>`` (MLflow's own version references).

    >>> [mlflow_alias_ok(n) for n in ("champion", "challenger", "prod.eu", "v2", "latest")]
    [True, True, False, False, False]
    """
    return bool(_ALIAS_RE.fullmatch(name)) and not re.fullmatch(r"(?i)latest|v\d+", name)


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"prefix.a.b": 1}`` (lists kept whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= _flat(f"{prefix}.{k}" if prefix else str(k), v)
        return out
    return {prefix: value}


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {
        _key(k): float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v
    }


@dataclass
class SyncResult:
    """What one sync did: MLflow runs logged, versions created, aliases moved (and skipped:
    names MLflow refuses), and the error that left the sync pending (None when MLflow is in
    step with retrainer)."""

    runs: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # aliases MLflow cannot hold
    error: str | None = None


class MlflowMirror:
    """Keeps an MLflow tracking server in step with one retrainer registry.

    Parameters:
        registry: retrainer's registry (the source of truth).
        tracking_uri: the MLflow tracking server (``http://host:5000``, ``sqlite:///mlflow.db``).
        model_name: the MLflow registered model (and experiment) name.
    """

    def __init__(self, registry: Registry, *, tracking_uri: str, model_name: str):
        self.registry = registry
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self._client = None

    def __repr__(self) -> str:
        return f"MlflowMirror({self.tracking_uri!r}, model={self.model_name!r})"

    @property
    def client(self):
        if self._client is None:
            # MLflow prints run links on stdout, which would break `retrainer cycle --json`
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
            self._client = _mlflow().MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client

    # --------------------------------------------------------------------- reconcile
    def sync(self) -> SyncResult:
        """Bring MLflow in step with retrainer: log finished runs, create missing versions,
        point aliases where retrainer's point. An MLflow failure is recorded as a pending sync
        (state ``mlflow``, event ``mlflow_pending``) and returned, never raised."""
        result = SyncResult()
        try:
            self._sync(result)
        except Exception as exc:  # noqa: BLE001  (MLflow, requests and OS errors alike)
            result.error = f"{type(exc).__name__}: {exc}"[:2000]
            self._record(result)
            warnings.warn(
                f"MLflow at {self.tracking_uri} is not in step with retrainer ({result.error}); "
                "retrainer's registry is unchanged and the next cycle retries",
                RuntimeWarning,
                stacklevel=2,
            )
            return result
        self._record(result)
        return result

    def _sync(self, result: SyncResult) -> None:
        state = self._state()
        experiment = self._experiment()
        runs = dict(state.get("runs") or {})  # retrainer run id -> MLflow run id
        with self.registry.store.session() as s:
            rows = s.scalars(select(RunRow).order_by(RunRow.id)).all()
            pending = [r for r in rows if str(r.id) not in runs and r.status in _FINISHED]
            todo = [(r, self._decision(s, r), self._drift(s, r.cycle_id)) for r in pending]
        for row, decision, drift in todo:
            runs[str(row.id)] = self._log_run(experiment, row, decision, drift)
            result.runs.append(row.id)
            self._save_state(runs=runs)
        mirrored = self._mirrored()
        with self.registry.store.session() as s:
            versions = s.scalars(select(ModelVersionRow.version).order_by(ModelVersionRow.version))
            missing = [v for v in versions if v not in mirrored]
            aliases = dict(s.execute(select(AliasRow.name, AliasRow.version)).all())
        for version in missing:
            mirrored[version] = self._log_version(experiment, version, runs)
            result.versions.append(version)
        if missing or aliases:
            self._ensure_model()
        current = self.client.get_registered_model(self.model_name).aliases if aliases else {}
        for alias, version in sorted(aliases.items()):
            if not mlflow_alias_ok(alias):
                result.skipped.append(alias)
                continue
            target = mirrored[version]
            if str(current.get(alias)) != target:
                self.client.set_registered_model_alias(self.model_name, alias, target)
                result.aliases[alias] = version

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.model_name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(self.model_name)

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            self.client.create_registered_model(
                self.model_name, description="mirrored from retrainer (its registry leads)"
            )

    def _mirrored(self) -> dict[int, str]:
        """Retrainer version -> MLflow version, read from the MLflow versions' tags."""
        found: dict[int, str] = {}
        query = f"name='{self.model_name}'"
        for mv in self.client.search_model_versions(query, max_results=10000):
            tag = (mv.tags or {}).get(VERSION_TAG)
            if tag and tag.isdigit():
                found[int(tag)] = str(mv.version)
        return found

    # --------------------------------------------------------------------- runs
    @staticmethod
    def _decision(session, run: RunRow) -> dict:
        row = session.get(DecisionRow, run.decision_id) if run.decision_id else None
        return {"reasons": list(row.reasons or [])} if row else {}

    @staticmethod
    def _drift(session, cycle_id: int | None) -> dict:
        """Alarms of the run's cycle by kind, and the drifted columns."""
        if cycle_id is None:
            return {}
        checks = session.scalars(
            select(CheckRow).where(CheckRow.cycle_id == cycle_id, CheckRow.alarm.is_(True))
        ).all()
        summary: dict[str, Any] = {"checks": len(checks)}
        for check in checks:
            summary[f"{check.kind}_alarms"] = summary.get(f"{check.kind}_alarms", 0) + 1
        columns = sorted({c.column for c in checks if c.kind == "drift" and c.column})
        summary["drifted_columns"] = columns
        return summary

    def _find_run(self, experiment: str, run_id: int) -> str | None:
        found = self.client.search_runs(
            [experiment], f"tags.`{RUN_TAG}` = '{run_id}'", max_results=1
        )
        return found[0].info.run_id if found else None

    def _log_run(self, experiment: str, run: RunRow, decision: dict, drift: dict) -> str:
        from mlflow.entities import Metric, Param, RunTag

        mlflow_id = self._find_run(experiment, run.id)
        if mlflow_id is None:
            mlflow_id = self.client.create_run(
                experiment,
                start_time=_ms(run.started_at),
                tags={RUN_TAG: str(run.id)},
                run_name=f"retrainer run {run.id}",
            ).info.run_id
        version = self.registry.get(run.version) if run.version else None
        lineage = version.lineage if version else {}
        window = dict(run.window or {})
        batches = window.get("batches") or []
        params = {
            "trainer.estimator": (lineage.get("trainer") or {}).get("estimator"),
            **_flat("trainer.params", (lineage.get("trainer") or {}).get("params") or {}),
            "window.batches": len(batches),
            "window.first_batch": batches[0] if batches else None,
            "window.last_batch": window.get("last_batch"),
            "window.rows": window.get("rows"),
            "window.holdout_rows": window.get("holdout_rows"),
            "window.from": window.get("from"),
            "window.to": window.get("to"),
            "window.clock": window.get("clock"),
        }
        gate = (run.metrics or {}).get("gate") or {}
        numbers = _numbers(_flat("gate", {k: v for k, v in gate.items() if k != "compared"}))
        numbers |= _numbers(_flat("version", version.metrics if version else {}))
        numbers |= _numbers(_flat("drift", {k: v for k, v in drift.items() if k != "checks"}))
        numbers["drift.alarms"] = float(drift.get("checks", 0))
        numbers["drift.columns"] = float(len(drift.get("drifted_columns") or []))
        tags = run_tags(decision, status=run.status, run_id=run.id)
        tags["retrainer.promoted"] = str(bool((run.metrics or {}).get("promoted"))).lower()
        tags["retrainer.drifted_columns"] = ",".join(drift.get("drifted_columns") or [])[:_MAX_TAG]
        if gate:
            tags["retrainer.gate"] = str(gate.get("reason", ""))[:_MAX_TAG]
            tags["retrainer.gate_passed"] = str(gate.get("passed")).lower()
        if run.version:
            tags[VERSION_TAG] = str(run.version)
        if run.error:
            tags["retrainer.error"] = run.error[:_MAX_TAG]
        at = _ms(run.finished_at) or _ms(utcnow())
        self.client.log_batch(
            mlflow_id,
            metrics=[Metric(k, v, at, 0) for k, v in sorted(numbers.items())],
            params=[
                Param(_key(k), str(v)[:_MAX_PARAM])
                for k, v in sorted(params.items())
                if v is not None
            ],
            tags=[RunTag(k, v) for k, v in sorted(tags.items())],
        )
        self.client.set_terminated(mlflow_id, _STATUS.get(run.status, "FAILED"), end_time=at)
        return mlflow_id

    # --------------------------------------------------------------------- versions
    def _log_version(self, experiment: str, version: int, runs: dict[str, str]) -> str:
        """Log a version's model (skops flavour) to its run and register it under the model."""
        import skops.io
        from mlflow import sklearn as mlflow_sklearn

        mv = self.registry.get(version)
        run_id = runs.get(str(mv.run_id)) if mv.run_id else None
        if run_id is None:  # registered by hand, or its run is not finished yet
            run_id = (mv.run_id and self._find_run(experiment, mv.run_id)) or None
        if run_id is None:  # the run logs its parameters into this one when it finishes
            tags, title = {}, f"retrainer version {version}"
            if mv.run_id:
                tags, title = {RUN_TAG: str(mv.run_id)}, f"retrainer run {mv.run_id}"
            run_id = self.client.create_run(experiment, tags=tags, run_name=title).info.run_id
        model = self.registry.load(version)  # hash-checked, allowlisted types only
        trusted = skops.io.get_untrusted_types(data=self.registry.artifacts.get_bytes(mv.artifact))
        with tempfile.TemporaryDirectory(prefix="retrainer-mlflow-") as tmp:
            path = Path(tmp) / "model"
            mlflow_sklearn.save_model(
                model,
                str(path),
                serialization_format="skops",
                skops_trusted_types=trusted,
                # named, not inferred: inferring loads the model in a fresh interpreter (~20 s)
                pip_requirements=mlflow_sklearn.get_default_pip_requirements(include_skops=True),
                metadata={"retrainer_version": version, "retrainer_artifact": mv.artifact},
            )
            self.client.log_artifacts(run_id, str(path), f"model-v{version}")
        self._ensure_model()
        uri = f"{self.client.get_run(run_id).info.artifact_uri}/model-v{version}"
        created = self.client.create_model_version(
            self.model_name,
            source=uri,
            run_id=run_id,
            tags={
                VERSION_TAG: str(version),
                ARTIFACT_TAG: mv.artifact,
                "retrainer.gate_passed": str(mv.metrics.get("gate_passed")).lower(),
            },
            description=f"retrainer version {version}",
        )
        return str(created.version)

    # --------------------------------------------------------------------- pending state
    def _state(self) -> dict:
        with self.registry.store.session() as s:
            row = s.get(StateRow, STATE_KEY)
            return dict(row.value or {}) if row else {}

    def _save_state(self, **changes: Any) -> None:
        with self.registry.store.session() as s:
            row = s.get(StateRow, STATE_KEY)
            if row is None:
                row = StateRow(key=STATE_KEY, value={})
                s.add(row)
            row.value, row.updated_at = {**(row.value or {}), **changes}, utcnow()

    def _record(self, result: SyncResult) -> None:
        """Pending or in step: the state row says which, and a change of it is an event."""
        was = self._state().get("pending")
        pending = None if result.error is None else {"since": utcnow().isoformat()}
        if result.error and was:
            pending = was
        self._save_state(pending=pending, error=result.error)
        if result.error or was:
            kind = "mlflow_pending" if result.error else "mlflow_synced"
            message = (
                f"MLflow sync pending: {result.error}"
                if result.error
                else "MLflow is in step with retrainer again"
            )
            with self.registry.store.session() as s:
                s.add(
                    EventRow(
                        kind=kind,
                        message=message,
                        data={"tracking_uri": self.tracking_uri, "model": self.model_name},
                    )
                )


def mirror_for(config, registry: Registry) -> MlflowMirror | None:
    """The mirror a project file asks for (``registry.backend: mlflow``), or None."""
    settings = config.registry
    if settings.backend != "mlflow":
        return None
    name = settings.model_name or config.project
    return MlflowMirror(registry, tracking_uri=settings.tracking_uri, model_name=name)


# ------------------------------------------------------------------------- import


def _parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    match = _URI_RE.match(uri or "")
    if match is None:
        raise RetrainerError(
            f"{uri!r} is not a registered-model URI: use models:/<name>@<alias> or "
            "models:/<name>/<version>"
        )
    return match["name"], match["alias"], match["version"]


def _read_model(folder: Path, uri: str, *, trust_pickle: bool, registry: Registry) -> Any:
    """The scikit-learn model of a downloaded MLflow model folder, loaded without letting
    MLflow deserialize it."""
    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StoreError(f"{uri} has no readable MLmodel file: {exc}") from exc
    flavors = spec.get("flavors") or {}
    sk = flavors.get("sklearn")
    if not isinstance(sk, dict):
        raise RetrainerError(
            f"{uri} has flavours {sorted(flavors)}, not sklearn: retrainer retrains, gates and "
            "serves scikit-learn models, so it imports the sklearn flavour only"
        )
    fmt = sk.get("serialization_format", "pickle")
    path = (folder / str(sk.get("pickled_model", "model.pkl"))).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise StoreError(f"{uri}: the model file {sk.get('pickled_model')!r} is missing")
    if fmt == "skops":  # retrainer's allowlist, not the trusted list the MLmodel file carries
        return registry.artifacts.load_model_file(path)
    if not trust_pickle:
        raise UnsafeArtifactError(
            f"{uri} is stored with {fmt}: loading a {fmt} file runs whatever code its author "
            "put in it, so retrainer refuses it. If you trust where this model came from, "
            "pass --trust-pickle (Python: trust_pickle=True); retrainer then stores it as "
            "skops and refuses it if it holds types outside its scikit-learn/NumPy/SciPy "
            "allowlist. Better: log the model again with serialization_format='skops'."
        )
    with path.open("rb") as handle:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(handle)
        return pickle.load(handle)  # noqa: S301  (the user passed --trust-pickle)


def import_champion(
    registry: Registry,
    uri: str,
    *,
    tracking_uri: str,
    trust_pickle: bool = False,
    mirror_name: str | None = None,
    actor: str = "user",
):
    """Adopt an MLflow model (``models:/name@alias`` or ``models:/name/3``) as the first
    champion: register it in retrainer's registry (as skops) and promote it. The MLflow version
    is tagged with the retrainer version, so the mirror does not log it a second time.

    Parameters:
        registry: retrainer's registry; it must have no champion yet.
        uri: the registered-model URI.
        tracking_uri: the MLflow tracking server.
        trust_pickle: load a pickle/cloudpickle model (runs its code: only for a trusted one).
        mirror_name: the registered model this project mirrors to; when it is ``name``, the
            imported MLflow version stands for the new retrainer version (no second copy).
        actor: who imported it.
    """
    mlflow = _mlflow()
    name, alias, number = _parse_uri(uri)
    if registry.alias() is not None:
        raise RetrainerError(
            f"this project already has a champion (version {registry.alias().version}); "
            "import-champion adopts an MLflow model as the first champion only"
        )
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if alias is not None:
        mv = client.get_model_version_by_alias(name, alias)
    else:
        mv = client.get_model_version(name, number)
    where = client.get_model_version_download_uri(name, mv.version)
    with tempfile.TemporaryDirectory(prefix="retrainer-import-") as tmp:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=where, dst_path=tmp, tracking_uri=tracking_uri
            )
        )
        model = _read_model(folder, uri, trust_pickle=trust_pickle, registry=registry)
    source = {"uri": uri, "name": name, "version": str(mv.version), "run_id": mv.run_id}
    version = registry.register(
        model, lineage={"imported": source, "tracking_uri": tracking_uri}, metrics={}
    )
    if mirror_name == name:
        client.set_model_version_tag(name, mv.version, VERSION_TAG, str(version.version))
        client.set_model_version_tag(name, mv.version, ARTIFACT_TAG, version.artifact)
    return registry.promote(version.version, reason=f"imported from {uri}", actor=actor)


def import_for_project(config, registry: Registry, uri: str, *, trust_pickle: bool = False):
    """:func:`import_champion` with the tracking server of a project file
    (``registry.tracking_uri``, else ``MLFLOW_TRACKING_URI``)."""
    tracking_uri = config.registry.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise RetrainerError(
            "no MLflow tracking server: set registry.tracking_uri in the project file "
            "(or MLFLOW_TRACKING_URI)"
        )
    mirror = registry.mirror.model_name if registry.mirror is not None else None
    return import_champion(
        registry, uri, tracking_uri=tracking_uri, trust_pickle=trust_pickle, mirror_name=mirror
    )
