"""A project: one model kept fresh. The Python door to the whole loop (nothing inside the
package imports it; the CLI and the service open it).

Example:
    >>> import tempfile
    >>> from retrainer.datasets import load_elec2
    >>> folder = tempfile.mkdtemp()
    >>> project = Project.from_dict({
    ...     "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
    ...     "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier",
    ...                 "params": {"max_depth": 4}, "window": {"batches": 2}},
    ... }, root=folder)
    >>> elec = load_elec2()
    >>> project.ingest(elec.iloc[:1344], key="weeks-1-4").n_rows
    1344
    >>> project.cycle().decision["action"]
    'retrain'
    >>> project.champion.version
    1
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.record import BatchInfo, Record
from retrainer.store.tables import utcnow

if TYPE_CHECKING:  # the stages are imported where a door method runs: a command that only
    from retrainer.labels import LabelReport  # reads the store does not import pandas
    from retrainer.registry import ModelVersion
    from retrainer.serving import PredictionReport

__all__ = ["BatchInfo", "Project"]


class Project(Record):
    """The door over the record and the stages: ingest, cycle, diagnose, promote, report."""

    # ---------------------------------------------------------------------- ingest
    def ingest(self, data: Any, *, key: str | None = None, source: str = "") -> BatchInfo:
        """Store one batch (pandas, polars or Arrow table). Ingest is idempotent by ``key``
        (default: the content hash), so a redelivered batch is stored once."""
        from retrainer.ingest import ingest

        return ingest(self, data, key=key, source=source)

    def ingest_path(self, path: str | Path) -> list[BatchInfo]:
        """Ingest a CSV or Parquet file, or every such file of a folder (one batch each)."""
        from retrainer.ingest import each_file
        from retrainer.store.tables import BatchRow

        return each_file(self, path, self.ingest, BatchRow)

    def file_key(self, path: Path, table: type, sha: str | None = None) -> str:
        """The ingest key of a file: ``file:<name>:<content hash>``, or the key under which the
        same bytes were stored before (in ``table``) under another name, so a file sent again
        is recognised whatever its name."""
        from retrainer.ingest import file_key

        return file_key(self, path, table, sha)

    def ingest_labels(
        self,
        data: Any,
        *,
        key: str | None = None,
        source: str = "",
        replace: bool = False,
        actor: str = "user",
    ) -> LabelReport:
        """Join late labels (a table of id and target) to the stored batches. A label that
        differs from the stored label of its id is refused unless ``replace`` (logged)."""
        from retrainer.labels import ingest_labels

        return ingest_labels(self, data, key=key, source=source, replace=replace, actor=actor)

    def ingest_labels_path(self, path: str | Path, *, replace: bool = False) -> list[LabelReport]:
        """Ingest late labels from a CSV or Parquet file or folder (``replace``: correct
        stored labels, see ``ingest_labels``)."""
        from retrainer.ingest import each_file
        from retrainer.store.tables import LabelSetRow

        ingest = functools.partial(self.ingest_labels, replace=replace)
        return each_file(self, path, ingest, LabelSetRow)

    def ingest_predictions(
        self, data: Any, *, key: str | None = None, version: int | None = None, source: str = ""
    ) -> PredictionReport:
        """Join a serving system's predictions (id, prediction and optionally score columns)
        to the stored batches; ``version`` is the model that served (default: the champion).
        Once labels arrive the cycle scores them as the ``serving`` role."""
        from retrainer.serving import ingest_predictions

        return ingest_predictions(self, data, key=key, version=version, source=source)

    def ingest_predictions_path(self, path: str | Path, version: int | None = None) -> list:
        """Ingest served predictions from a CSV or Parquet file or folder."""
        from retrainer.ingest import each_file
        from retrainer.store.tables import PredictionLogRow

        ingest = functools.partial(self.ingest_predictions, version=version)
        return each_file(self, path, ingest, PredictionLogRow)

    # ------------------------------------------------------------------- the loop
    def cycle(self, *, holder: str | None = None, clock: Callable[[], datetime] = utcnow) -> Any:
        """Run one pass of the loop over what arrived since the last one, holding the
        project's cycle lease (``BusyError`` while another process runs a cycle). The service's
        scheduler passes its own ``holder`` and ``clock``."""
        from threadpoolctl import threadpool_limits

        from retrainer.cycle import run_cycle
        from retrainer.lease import cycle_lease

        with cycle_lease(self, holder, clock), threadpool_limits(self.config.trainer.threads):
            return run_cycle(self)

    # -------------------------------------------------------------------- diagnosis
    def diagnosis(self, batch_id: int) -> dict | None:
        """The stored diagnosis of a batch (ranked causes, alarms, proposed fix), or None."""
        from retrainer.record import stored_diagnosis

        return stored_diagnosis(self, batch_id)

    def fixes(self) -> dict:
        """The fixes applied at ingest: ``data.fixes`` of the project file over accepted ones."""
        from retrainer.diagnosis.loop import accepted_fixes

        return accepted_fixes(self)

    def accept_fix(self, batch_id: int, *, reason: str = "accepted", actor: str = "user") -> dict:
        """Accept the fix proposed by the diagnosis of ``batch_id``; later batches get it."""
        from retrainer.diagnosis.loop import accept_fix

        return accept_fix(self, batch_id, reason=reason, actor=actor)

    def release(
        self, batch_id: int, reason: str, *, actor: str = "user", force: bool = False
    ) -> dict:
        """Release a quarantined batch (accepted fixes applied, quality checks re-run: a batch
        that still fails them stays quarantined unless ``force``), or the rows set aside from a
        batch that proceeded (``retrainer.quarantine.release_rows``)."""
        from retrainer.diagnosis.loop import release
        from retrainer.quarantine import release_rows

        rows = release_rows(self, batch_id, reason=reason, actor=actor)
        return rows or release(self, batch_id, reason=reason, actor=actor, force=force)

    # -------------------------------------------------------------------- models
    def promote(
        self,
        version: int,
        *,
        reason: str = "promoted by hand",
        actor: str = "user",
        force: bool = False,
    ) -> ModelVersion:
        """Make ``version`` the champion; one that failed its gate needs ``force=True``
        (:class:`~retrainer.errors.GateFailedError` says why it failed), and one whose model
        does not load (damaged, or not a skops file) is refused, naming the version."""
        from retrainer.promotion import promote

        return promote(self, version, reason=reason, actor=actor, force=force)

    def rollback(self, *, reason: str = "rolled back by hand", actor: str = "user") -> ModelVersion:
        """Make the previous champion the champion again."""
        from retrainer.promotion import rollback

        return rollback(self, reason=reason, actor=actor)

    # -------------------------------------------------------------------- views
    def status(self) -> dict:
        """Counts, the champion and the latest events."""
        from retrainer.views import status

        return status(self)

    def report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report and return its path."""
        from retrainer.report import write_report

        return write_report(self, Path(path) if path else self.config.resolve("report.html"))
