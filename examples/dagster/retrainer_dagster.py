"""Run retrainer from Dagster: one asset, one cycle per materialization, a failed run when the
cycle fails.

Each materialization pulls the rows an SQL ``data.source`` has ready (nothing to do for a folder
source: send files with ``retrainer ingest`` or the API), then runs one cycle: checks, diagnosis,
decision and, when the policy says so, a retrain that the gate accepts or rejects. The asset
fails (and Dagster's alerts and retry policies see it) when the cycle raises or its retrain run
fails; a challenger the gate rejects is a successful cycle (the champion stays, as it should).
Another process running the project's cycle at that moment (``retrainer run`` or ``serve``) asks
Dagster to retry in a minute instead.

Use it: ``pip install "retrainer[dagster]"``, copy this file next to ``retrainer.yaml`` and run
``dagster dev -f retrainer_dagster.py`` (or add ``defs`` to your code location). The project
file is ``RETRAINER_PROJECT`` (default ``retrainer.yaml``).
"""

import os

import dagster as dg

from retrainer import Project
from retrainer.errors import BusyError, RetrainerError
from retrainer.integrations.sql_source import sql_source


class RetrainerProject(dg.ConfigurableResource):
    """The retrainer project a code location keeps fresh."""

    project_file: str = "retrainer.yaml"

    def open(self) -> Project:
        return Project.from_yaml(self.project_file)


@dg.asset(description="One retrainer cycle: pull new rows, check, decide, retrain, gate.")
def retrainer_cycle(
    context: dg.AssetExecutionContext, retrainer: RetrainerProject
) -> dg.MaterializeResult:
    try:
        project = retrainer.open()
        source = sql_source(project)
        pulled = source.pull() if source is not None else None
        if pulled is not None:
            context.log.info(f"pulled {pulled.rows} rows from {source.name}")
        report = project.cycle().to_dict()
    except BusyError as exc:  # another process runs this project's cycle right now
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=60) from exc
    except RetrainerError as exc:
        raise dg.Failure(description=f"the retrainer cycle failed: {exc}") from exc
    decision, run = report["decision"], report["run"]
    metadata = {
        "cycle": report["cycle"],
        "batches": len(report["batches"]),
        "quarantined": len(report["quarantined"]),
        "alarms": len(report["alarms"]),
        "decision": decision["action"],
        "reasons": "; ".join(decision["reasons"]),
        "run": run["status"] if run else "none",
        "champion": report["champion"] or 0,
    }
    if run and run["status"] == "failed":
        raise dg.Failure(
            description=f"the retrain of cycle {report['cycle']} failed: {run.get('message')}",
            metadata=metadata,
        )
    context.log.info(f"cycle {report['cycle']}: {decision['action']}, run {metadata['run']}")
    return dg.MaterializeResult(metadata=metadata)


retrainer_job = dg.define_asset_job("retrainer_job", selection=[retrainer_cycle])

defs = dg.Definitions(
    assets=[retrainer_cycle],
    jobs=[retrainer_job],
    schedules=[dg.ScheduleDefinition(job=retrainer_job, cron_schedule="0 * * * *")],
    resources={
        "retrainer": RetrainerProject(
            project_file=os.environ.get("RETRAINER_PROJECT", "retrainer.yaml")
        )
    },
)
