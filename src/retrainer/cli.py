"""The ``retrainer`` command line. Commands that print results also print JSON (``--json``)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retrainer.errors import BusyError, RetrainerError

console = Console()
err_console = Console(stderr=True)


def _emit(data: Any, as_json: bool, render) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def _project(ctx: click.Context, scheduler: str | None = None):
    from retrainer.project import Project

    project = Project.from_yaml(ctx.obj["config"])
    if scheduler:  # --scheduler: compute on this Dask cluster, whatever compute: says
        compute = project.config.compute.model_copy(
            update={"backend": "dask", "scheduler": scheduler}
        )
        project.config = project.config.model_copy(update={"compute": compute})
    return project


_SCHEDULER = "Train on this running Dask scheduler (tcp://host:8786) instead of compute:."


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # every failure: one line and exit 2 (traceback with --debug)
            if isinstance(exc, BrokenPipeError):
                raise  # click's own handling: the reader went away
            _fail(ctx, exc)


def _fail(ctx: click.Context, exc: Exception) -> None:
    """Print what failed in one line (the traceback first under ``--debug``) and exit 2."""
    import traceback

    from retrainer.errors import describe

    if ctx.params.get("debug"):
        traceback.print_exception(exc, file=sys.stderr)
    what = describe(exc)
    if not isinstance(exc, RetrainerError):
        command = " ".join(["retrainer", *filter(None, [ctx.invoked_subcommand])])
        what = f"{command} failed: {what} (run with --debug for the traceback)"
    click.echo(f"error: {what}", err=True)
    sys.exit(2)


@click.group(cls=_Group)
@click.option(
    "-c",
    "--config",
    default="retrainer.yaml",
    envvar="RETRAINER_CONFIG",
    show_default=True,
    help="The project file.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="RETRAINER_DEBUG",
    help="Print the traceback of an error (else one line).",
)
@click.version_option(package_name="retrainer")
@click.pass_context
def main(ctx: click.Context, config: str, debug: bool) -> None:
    """retrainer keeps a deployed model fresh: profile, check, decide, retrain, gate, register."""
    ctx.obj = {"config": config}


# what a regression changes in the template: its estimator, task, gate metric, a performance
# drop relative to the champion's loss (a loss has units) and a concept detector that reads a
# loss (DDM reads 0/1 errors)
_REGRESSION = (
    ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    (
        "  task: classification       # or regression (then gate.metric mae, rmse or r2, and a "
        "concept\n                             #   detector that reads a loss: page_hinkley, "
        "adwin, kswin, cusum)",
        "  task: regression           # or classification; gate.metric mae, rmse or r2, and a "
        "concept\n                             #   detector that reads a loss: page_hinkley, "
        "adwin, kswin, cusum",
    ),
    ("  metric: accuracy           #", "  metric: mae                #"),
    (
        "    - {type: performance, max_drop: 0.05}  # or min_value: 0.8; on accuracy the drop "
        "must also\n                                           #   be significant",
        "    - {type: performance, max_drop: 10%}   # the loss a tenth above the champion's, or\n"
        "                                           #   a rise in the target's units (2.5), or\n"
        "                                           #   min_value: a ceiling; the rise must also\n"
        "                                           #   be significant",
    ),
    # Page-Hinkley's threshold is in the loss's units (dollars, logs): calibrated, never fixed
    ("concept: {detector: ddm}  ", "concept: {detector: page_hinkley, arl: 2000}"),
    (
        "  # cost: {retrain: 500}    # a retrain is worth 500 wrong predictions (or money: "
        "{retrain: 200,\n  #                          # error: 0.5}). With a cost and no triggers "
        "listed, the cost trigger",
        "  # cost: {retrain: 500}    # a retrain is worth 500 of absolute error in the target's "
        "unit,\n  #                          # summed over predictions (gate.metric rmse: of "
        "squared error; or\n  #                          # money: {retrain: 200, error: 0.5}). "
        "With a cost and no triggers\n  #                          # listed, the cost trigger",
    ),
)


def project_template(task: str = "classification") -> str:
    """The commented project file ``retrainer init`` writes, for a classifier or a regressor.

    >>> import yaml
    >>> settings = yaml.safe_load(project_template("regression"))
    >>> settings["trainer"]["task"], settings["gate"]["metric"], settings["checks"]["concept"]
    ('regression', 'mae', {'detector': 'page_hinkley', 'arl': 2000})
    >>> settings["policy"]["triggers"][4]
    {'type': 'performance', 'max_drop': '10%'}
    """
    text = resources.files("retrainer").joinpath("templates/retrainer.yaml").read_text()
    if task == "regression":
        for old, new in _REGRESSION:
            if text.count(old) != 1:
                raise RetrainerError(f"the project template lost its line {old.strip()!r}")
            text = text.replace(old, new)
    return text


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "--task",
    type=click.Choice(["classification", "regression"]),
    default="classification",
    show_default=True,
    help="A regression gets a regressor, the gate metric mae and a loss-reading detector.",
)
@click.pass_context
def init(ctx: click.Context, force: bool, task: str) -> None:
    """Write a commented project file to start from."""
    path = Path(ctx.obj["config"])
    if path.exists() and not force:
        raise RetrainerError(f"{path} exists; use --force to overwrite it")
    path.write_text(project_template(task), encoding="utf-8")
    console.print(f"wrote {path}: edit data.target and data.source, then `retrainer ingest`.")


@main.command()
@click.argument("paths", nargs=-1, required=False)
@click.option("--labels", is_flag=True, help="PATHS hold late labels (id and target columns).")
@click.option(
    "--replace",
    is_flag=True,
    help="With --labels: correct stored labels of the same ids (logged as labels_replaced).",
)
@click.option(
    "--predictions",
    is_flag=True,
    help="PATHS hold a serving system's predictions (id, prediction, optional score columns).",
)
@click.option(
    "--version", type=int, default=None, help="With --predictions: the model version that served."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    labels: bool,
    replace: bool,
    predictions: bool,
    version: int | None,
    as_json: bool,
) -> None:
    """Add batches (or late labels, or served predictions) from CSV or Parquet files, folders
    or glob patterns ('data/2024-*.csv'); one batch per file, the same rows sent again under
    another name are recognised. Label rows whose ids match no stored row are kept for later
    batches, and the command exits 1 naming the first of them. PATHS may be object-storage URLs
    (s3://bucket/in/, one object or every data file under a prefix; the s3 extra). Without
    PATHS, pulls the new rows of an SQL data.source."""
    from retrainer.data.intake import default_warnings, expand_paths, unmatched_ids
    from retrainer.data.io import list_files
    from retrainer.integrations.storage import is_url
    from retrainer.watch import ingest_objects

    if labels and predictions:
        raise click.UsageError("--labels and --predictions exclude each other")
    if replace and not labels:
        raise click.UsageError("--replace corrects labels: use it with --labels")
    project = _project(ctx)
    for warning in default_warnings(project.config.data):
        err_console.print(f"note: {warning}", highlight=False, markup=False, soft_wrap=True)
    urls = [p for p in paths if is_url(p)]
    if urls and (predictions or replace):
        raise click.UsageError("--predictions and --replace read local files (not URLs)")
    files = [f for p in expand_paths([p for p in paths if p not in urls]) for f in list_files(p)]
    if not paths:
        done = _pull_sql(project, labels or predictions)
    elif predictions:
        done = [(f, project.ingest_predictions_path(f, version=version)[0]) for f in files]
    elif labels:
        done = [(f, project.ingest_labels_path(f, replace=replace)[0]) for f in files]
    else:
        done = [(f, project.ingest_path(f)[0]) for f in files]
    for url in urls:
        done += ingest_objects(project, url, labels=labels)
    data = [i.to_dict() | {"file": str(f)} for f, i in done]

    def render(rows: list[dict]) -> None:
        for r in rows:
            if labels or predictions:
                what = f"predictions of v{r['version']}" if predictions else "labels"
                console.print(
                    f"{what} {r['file']}: {r['matched']} joined to batches "
                    f"{r['batches']}, {r['unmatched']} unmatched"
                    + (f", {r['replaced']} replaced" if r.get("replaced") else "")
                    + ("" if r["new"] else " (already ingested)"),
                    highlight=False,
                )
            else:
                console.print(
                    f"batch {r['id']} {r['file']}: {r['n_rows']} rows, "
                    f"{r['n_labelled']} labelled" + ("" if r["new"] else " (already ingested)"),
                    highlight=False,
                )

    _emit(data, as_json, render)
    unmatched = [(f, i) for f, i in done if labels and i.new and i.unmatched]
    for f, i in unmatched:
        ids = [] if is_url(str(f)) else unmatched_ids(project, f)  # an object is not kept
        first = ", ".join(map(str, ids)) or "?"
        err_console.print(
            f"error: {f}: {i.unmatched} of {i.n_rows} labels match no stored row "
            f"(first ids: {first}); they are kept and join batches ingested later",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if unmatched:
        sys.exit(1)


def _pull_sql(project, other_kind: bool) -> list:
    """`retrainer ingest` without paths: one pull of an SQL data.source (as (name, batch))."""
    from retrainer.integrations.sql_source import sql_source

    source = sql_source(project)
    if source is None or other_kind:
        raise click.UsageError("give PATHS (only an SQL data.source is pulled without them)")
    pulled = source.pull()
    if pulled is None or pulled.stored is None:
        err_console.print(
            f"{source.name}: no new rows ready", highlight=False, markup=False, soft_wrap=True
        )
        return []
    return [(source.name, pulled.stored)]


def _note_missing_tools(project) -> None:
    """Say once, on stderr, which deploy targets this machine cannot check and how to fix it."""
    if not project.config.deploy_targets:
        return
    from retrainer.deploy.gate import tools_missing

    for target in project.config.targets():
        if (why := tools_missing(target)) is not None:
            err_console.print(f"note: {why}", highlight=False, markup=False, soft_wrap=True)


def _render_cycle(r: dict) -> None:
    console.print(
        f"[bold]cycle {r['cycle']}[/]: {len(r['batches'])} new batch(es), "
        f"{len(r['quarantined'])} quarantined"
    )
    for a in r["alarms"][:10]:
        console.print(f"  alarm [{a['severity']}] {a['cause']}: {a['message']}  -> {a['action']}")
    for e in r["evaluations"]:
        console.print(
            f"  batch {e['batch']} {e['role']} v{e['version']}: "
            f"{e['metric']}={_fmt(e['value'])} on {e['n']} labels"
        )
    d = r["decision"]
    console.print(f"  decision: [bold]{d['action']}[/] - {'; '.join(d['reasons']) or 'no trigger'}")
    if d["suppressed"]:
        console.print(f"  suppressed: {'; '.join(d['suppressed'])}")
    if r["run"]:
        console.print(f"  run {r['run']['run_id']}: {r['run']['status']} - {r['run']['message']}")
    console.print(f"  champion: v{r['champion']}" if r["champion"] else "  champion: none")
    for note in r.get("notes", []):
        console.print(f"  hint: {note}", markup=False)


@main.command()
@click.option("--scheduler", help=_SCHEDULER)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cycle(ctx: click.Context, scheduler: str | None, as_json: bool) -> None:
    """Run one pass: profile, checks, decision, and (retrain, gate, register) if decided."""
    project = _project(ctx, scheduler)
    _note_missing_tools(project)
    _emit(project.cycle().to_dict(), as_json, _render_cycle)


@main.command()
@click.option("--interval", default=60.0, show_default=True, help="Seconds between polls.")
@click.option("--max-cycles", type=int, default=None, help="Stop after this many cycles.")
@click.option(
    "--until-idle", is_flag=True, help="Stop once the backlog is worked through (a replay)."
)
@click.option("--scheduler", help=_SCHEDULER)
@click.option("--json", "as_json", is_flag=True, help="Print each cycle as JSON.")
@click.pass_context
def run(
    ctx: click.Context,
    interval: float,
    max_cycles: int | None,
    until_idle: bool,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Watch data.source (and data.labels) and run a cycle whenever something arrives. A
    backlog is worked through run.max_batches_per_cycle files a cycle (default 1), with a
    progress bar and one line per cycle; idle, a poll only lists the folders. Ctrl-C stops
    cleanly between steps; --until-idle stops at the first poll that finds nothing new, and
    exits 2 if a file was not ingested (each is named as it is refused)."""
    from retrainer.integrations.sql_source import sql_watch
    from retrainer.integrations.storage import is_url
    from retrainer.watch import FolderWatch

    project = _project(ctx, scheduler)
    if not project.config.data.source:
        raise RetrainerError(
            "retrainer run needs data.source (a file or folder) in the project file"
        )
    watch = sql_watch(project)  # data.source: {sql: ...}
    source = project.config.data.source
    if watch is None and not is_url(source) and not project.config.resolve(source).exists():
        raise RetrainerError(
            f"data.source {project.config.resolve(source)}: no such file or folder"
        )
    _note_missing_tools(project)
    limit = project.config.run.max_batches_per_cycle
    stop = {"now": False}

    def request_stop(signum, frame) -> None:
        stop["now"] = True
        err_console.print("stopping after the current step...")

    previous = signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    watch = watch or FolderWatch(project)
    cycles, reported, hinted = 0, set(), set()
    columns = [TextColumn("backlog"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err_console, disable=as_json, transient=True) as bar:
            task = bar.add_task("backlog", total=0, visible=False)
            while not stop["now"] and (max_cycles is None or cycles < max_cycles):
                if watch.scan():
                    done = int(bar.tasks[0].completed)
                    bar.update(task, total=done + len(watch.batches), visible=True)
                batches, labels = watch.ingest_next(limit) if not stop["now"] else ([], [])
                for path, error in watch.failed.items():
                    if path not in reported:
                        reported.add(path)
                        bar.console.print(f"not ingested: {error}", highlight=False, markup=False)
                reported &= set(watch.failed)
                bar.advance(task, len(batches))
                fresh = [b for b in batches if b.new] + [x for x in labels if x.new]
                if fresh and not stop["now"]:
                    try:
                        result = project.cycle().to_dict()
                    except BusyError as exc:  # the service runs cycles on arriving data itself
                        bar.console.print(f"not cycling now: {exc}")
                    else:
                        cycles += 1
                        if as_json:
                            _emit(result, True, _render_cycle)
                        else:
                            line = _cycle_line(result, len(watch.batches))
                            console.print(line, highlight=False, markup=False, soft_wrap=True)
                            for note in _new_hints(result, hinted):
                                console.print(f"  hint: {note}", markup=False, soft_wrap=True)
                        continue
                if watch.batches or watch.labels:
                    continue  # more of the backlog, or files that held nothing new
                if until_idle:
                    break
                bar.update(task, visible=False)
                deadline = time.monotonic() + interval
                while not stop["now"] and time.monotonic() < deadline:
                    time.sleep(min(0.2, interval))
    finally:
        signal.signal(signal.SIGINT, previous)
    refused = sorted(getattr(p, "name", None) or str(p) for p in watch.failed)  # a file, object
    left = f"; {len(refused)} file(s) refused: {', '.join(refused[:5])}" if refused else ""
    err_console.print(f"stopped after {cycles} cycle(s){left}", highlight=False, markup=False)
    if refused and until_idle:
        sys.exit(2)  # a replay or a batch job: what was sent and not taken is a failure


def _new_hints(r: dict, shown: set[str]) -> list[str]:
    """The cycle's hints whose advice (the part after the last "; ") ``shown`` lacks; adds it,
    so a backlog prints each piece of advice once, not once a cycle.

    >>> shown = set()
    >>> _new_hints({"notes": ["drift in 9 of 10 batches; set x"]}, shown)
    ['drift in 9 of 10 batches; set x']
    >>> _new_hints({"notes": ["drift in 10 of 10 batches; set x"]}, shown)
    []
    """
    fresh = []
    for note in r.get("notes", []):
        advice = note.rsplit("; ", 1)[-1]
        if advice not in shown:
            shown.add(advice)
            fresh.append(note)
    return fresh


def _cycle_line(r: dict, waiting: int) -> str:
    """One line for a cycle of `retrainer run`.

    >>> print(_cycle_line({"cycle": 3, "batches": [7, 8], "quarantined": [], "alarms": [{}],
    ...                    "decision": {"action": "retrain"}, "run": {"status": "succeeded"},
    ...                    "champion": 2}, 5))
    cycle 3: batches 7-8, 1 alarm(s), retrain (run succeeded), champion v2; 5 files waiting
    """
    from retrainer.views import run_outcome

    b = r["batches"]
    what = f"batches {b[0]}-{b[-1]}" if len(b) > 1 else (f"batch {b[0]}" if b else "labels")
    quarantined = f" ({len(r['quarantined'])} quarantined)" if r["quarantined"] else ""
    ran = r["run"]
    run = f" (run {run_outcome(ran['status'], ran.get('message', ''), 100)})" if ran else ""
    champion = f"v{r['champion']}" if r["champion"] else "none"
    return (
        f"cycle {r['cycle']}: {what}{quarantined}, {len(r['alarms'])} alarm(s), "
        f"{r['decision']['action']}{run}, champion {champion}; "
        f"{waiting} file{'' if waiting == 1 else 's'} waiting"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Batches, the champion, the last decision and the latest events."""

    def render(s: dict) -> None:
        b = s["batches"]
        console.print(f"[bold]{s['project']}[/] ({s['store']})")
        states = ", ".join(f"{k} {v}" for k, v in b.items() if k != "total")
        console.print(
            f"batches: {b['total']} ({states}); "
            f"rows {s['rows']}, labelled {s['labelled_rows']}; cycles {s['cycles']}"
        )
        champ = s["champion"]
        console.print(
            f"champion: v{champ['version']} ({champ['metrics'].get('metric')} "
            f"{_fmt(champ['metrics'].get('holdout'))} on its holdout)"
            if champ
            else "champion: none"
        )
        if s.get("held_back"):
            console.print(f"[bold red]{s['held_back']['line']}[/]", highlight=False)
        if s.get("set_aside"):
            console.print(s["set_aside"]["line"], highlight=False, markup=False)
        if s.get("mlflow_pending"):
            console.print(f"[yellow]{s['mlflow_pending']['line']}[/]", highlight=False)
        if s.get("hint"):
            console.print(f"hint: {s['hint']}", highlight=False, markup=False, soft_wrap=True)
        if s["last_decision"]:
            ld = s["last_decision"]
            console.print(f"last decision: {ld['action']} - {'; '.join(ld['reasons']) or 'none'}")
        for a in s.get("alarms", []):
            console.print(
                f"  alarm {a['clock']} [{a['severity']}] {a['cause']}: {a['message']}"
                f" -> {a['action']}",
                highlight=False,
            )
        for e in s["events"]:
            console.print(f"  {e['at'][:19]} {e['kind']:<10} {e['message']}", highlight=False)

    _emit(_project(ctx).status(), as_json, render)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """Registered model versions with their metrics and lineage."""
    data = [m.to_dict() | {"reference": None} for m in _project(ctx).models]

    def render(rows: list[dict]) -> None:
        # one line a version in 80 columns: the triggers by name (when it was made and the
        # reasons' words are in --json and `retrainer explain decision`)
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
        widths = {"version": 7, "aliases": 8, "holdout": 7, "gate": 6, "window": 22}
        for name, width in widths.items():
            table.add_column(name, no_wrap=True, min_width=width)
        table.add_column("triggers", no_wrap=True, overflow="ellipsis")
        for m in rows:
            w = m["lineage"].get("window", {})
            reasons = m["lineage"].get("reasons", [])
            table.add_row(
                str(m["version"]),
                ",".join(m["aliases"]),
                _fmt(m["metrics"].get("holdout")),
                "passed" if m["metrics"].get("gate_passed") else "failed",
                f"{w.get('from', '')[:10]}..{w.get('to', '')[:10]}",
                ", ".join(dict.fromkeys(r.split(":", 1)[0] for r in reasons)),
            )
        console.print(table)

    _emit(data, as_json, render)


@main.command()
@click.argument("version", type=int)
@click.option("--reason", default="promoted by hand", show_default=True)
@click.option("--force", is_flag=True, help="Promote even a version that failed its gate.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def promote(ctx: click.Context, version: int, reason: str, force: bool, as_json: bool) -> None:
    """Make VERSION the champion (one that failed its gate needs --force)."""
    done = _project(ctx).promote(version, reason=reason, force=force)
    result = done.to_dict() | {"reference": None}
    forced = " (forced past its failed gate)" if done.metrics.get("gate_passed") is False else ""
    _emit(result, as_json, lambda m: console.print(f"champion is now v{m['version']}{forced}"))


@main.command()
@click.option("--reason", default="rolled back by hand", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def rollback(ctx: click.Context, reason: str, as_json: bool) -> None:
    """Make the previous champion the champion again."""
    result = _project(ctx).rollback(reason=reason).to_dict() | {"reference": None}
    _emit(result, as_json, lambda m: console.print(f"champion rolled back to v{m['version']}"))


@main.command("import-champion")
@click.argument("uri")
@click.option("--trust-pickle", is_flag=True, help="Load a pickle model (runs its code).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def import_champion(ctx: click.Context, uri: str, trust_pickle: bool, as_json: bool) -> None:
    """Adopt an MLflow model (models:/name@champion) as the first champion."""
    from retrainer.integrations.mlflow_registry import import_for_project

    project = _project(ctx)
    done = import_for_project(project.config, project.registry, uri, trust_pickle=trust_pickle)
    result = done.to_dict() | {"reference": None}
    _emit(result, as_json, lambda m: console.print(f"champion is now v{m['version']} ({uri})"))


@main.command()
@click.option("--reason", required=True, help="Why (stored with the decision).")
@click.pass_context
def retrain(ctx: click.Context, reason: str) -> None:
    """Ask for a retrain at the next cycle (the manual trigger)."""
    _project(ctx).request_retrain(reason)
    console.print("retrain requested: it runs at the next cycle")


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the HTML (default: report.html beside the project file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def report(ctx: click.Context, out: Path | None, as_json: bool) -> None:
    """Write the HTML report."""
    path = _project(ctx).report(out)
    _emit({"report": str(path)}, as_json, lambda d: console.print(f"report: {d['report']}"))


@main.command()
@click.argument("version", type=int)
@click.option("--target", required=True, help="A deploy target of the project file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to copy to.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def export(ctx: click.Context, version: int, target: str, out: Path, as_json: bool) -> None:
    """Copy the verified microcontroller bundle (C code, manifest) of VERSION for TARGET."""
    from retrainer.deploy.tinyml import verify_bundle

    project = _project(ctx)
    if target not in project.config.deploy_targets:
        known = ", ".join(project.config.deploy_targets) or "none"
        raise RetrainerError(f"no deploy target {target!r} in the project file (known: {known})")
    checked = (project.registry.get(version).lineage.get("deploy") or {}).get(target) or {}
    bundle = project.bundle_folder() / f"{target}-{version}"
    if not bundle.is_dir() and checked.get("skipped"):
        raise RetrainerError(f"version {version} has no bundle: {checked['skipped']}")
    if not bundle.is_dir():
        raise RetrainerError(
            f"version {version} has no bundle for {target!r}: it did not pass "
            "that target's gate (see `retrainer models --json`, lineage.deploy)"
        )
    manifest = verify_bundle(bundle)
    destination = out / bundle.name
    shutil.copytree(bundle, destination)
    data = {"bundle": str(destination), "files": sorted(manifest["files"])}
    _emit(data, as_json, lambda d: console.print(f"bundle {d['bundle']}: {', '.join(d['files'])}"))


@main.command("ingest-telemetry")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def ingest_telemetry(ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Store device telemetry reports (the sketch's binary files) and check them for drift."""
    from retrainer.deploy.fleet import ingest_telemetry as ingest_report

    project = _project(ctx)
    stored, failed = [], []
    for path in files:
        try:
            stored.append(ingest_report(project, path.read_bytes(), source=str(path)).to_dict())
        except (OSError, RetrainerError) as exc:
            failed.append({"file": str(path), "error": str(exc)})

    def render(d: dict) -> None:
        for r in d["stored"]:
            state = "stored" if r["new"] else "already stored"
            alarms = ", ".join(r["alarms"]) or "no alarms"
            console.print(
                f"{state}: device {r['device']} ({r['target']}, version {r['version']}, "
                f"report {r['sequence']}): {r['n_rows']} rows, {alarms}",
                highlight=False,
            )
        for f in d["failed"]:
            err_console.print(f"[bold red]error:[/] {f['file']}: {f['error']}", highlight=False)

    _emit({"stored": stored, "failed": failed}, as_json, render)
    if failed:
        sys.exit(2)


@main.command()
@click.argument("target")
@click.argument("version", type=int, required=False)
@click.option("--percent", type=float, default=100.0, show_default=True, help="Share of devices.")
@click.option("--rollback", "back", is_flag=True, help="Offer the previous version to all.")
@click.option("--reason", default="", help="Why (stored with the rollout).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def rollout(
    ctx: click.Context,
    target: str,
    version: int | None,
    percent: float,
    back: bool,
    reason: str,
    as_json: bool,
) -> None:
    """Offer VERSION's bundle for TARGET to --percent of its devices (or --rollback)."""
    from retrainer.deploy import fleet

    project = _project(ctx)
    if back:
        done = fleet.rollback(project, target, reason=reason)
    elif version is None:
        raise RetrainerError("name the VERSION to roll out (or pass --rollback)")
    else:
        done = fleet.start_rollout(project, target, version, percent, reason=reason)

    def render(d: dict) -> None:
        rest = f", version {d['base']} to the rest" if d["percent"] < 100 and d["base"] else ""
        console.print(
            f"rollout {d['id']}: {d['target']} version {d['version']} to {d['percent']:g}% "
            f"of devices{rest}"
        )

    _emit(done.to_dict(), as_json, render)


@main.command("fleet")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def fleet_command(ctx: click.Context, as_json: bool) -> None:
    """Devices (target, version, last seen), rollouts, and drift checks of fleet telemetry."""
    from retrainer.deploy.fleet import fleet

    def render(d: dict) -> None:
        table = Table("device", "target", "runs", "offered", "last seen", "reports", "rows")
        for x in d["devices"]:
            table.add_row(
                x["device"],
                x["target"],
                str(x["version"]),
                str(x["offered"]),
                x["last_seen"][:19],
                str(x["reports"]),
                str(x["rows"]),
            )
        console.print(table)
        for target, r in d["rollouts"].items():
            line = "no rollout (devices get the champion's bundle)"
            if r:
                line = f"version {r['version']} to {r['percent']:g}%, base {r['base']}"
            console.print(f"{target}: {line}")
        for version, c in d["checks"].items():
            verdict = c["dataset_drift"]["message"] if c["dataset_drift"] else "not tested"
            names = ", ".join(f"{a['name']}:{a['column']}" for a in c["alarms"]) or "none"
            console.print(f"fleet data on version {version}: {verdict}; alarms: {names}")

    _emit(fleet(_project(ctx)), as_json, render)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("out/elec2"),
    show_default=True,
    help="Folder for the store, artifacts and report.",
)
@click.option("--fresh", is_flag=True, help="Start from an empty store in --out.")
@click.option(
    "--weeks",
    type=click.IntRange(min=6),
    default=None,
    help="Replay only the first N weeks (4 of them train the first model); default all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(out: Path, fresh: bool, weeks: int | None, as_json: bool) -> None:
    """The main job: replay ELEC2 (real drift, shipped inside the package) week by week through
    the live loop, and compare with the same model never retrained. A deploy target whose tools
    are not installed is skipped with one note saying how to install them."""
    from retrainer.backtest import first_periods
    from retrainer.datasets import load_elec2
    from retrainer.deploy.gate import tools_missing
    from retrainer.project import Project
    from retrainer.replay import replay

    out.mkdir(parents=True, exist_ok=True)
    config = out / "retrainer.yaml"
    if fresh:
        for name in ("store.db", "store.db-wal", "store.db-shm", "artifacts", "report.html"):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    if fresh or not config.exists():
        config.write_text(resources.files("retrainer").joinpath("examples/elec2.yaml").read_text())
    project = Project.from_yaml(config)
    columns = [
        TextColumn("replaying ELEC2 week by week"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err_console, disable=as_json) as bar:
        task = bar.add_task("replay", total=None)
        frame = load_elec2()
        if weeks is not None:
            d = project.config.data
            frame = first_periods(frame, d.time_column, "7D", weeks, d.timezone)
        summary = replay(
            project,
            frame,
            report=out / "report.html",
            on_step=lambda done, total: bar.update(task, completed=done, total=total),
        )
    from retrainer.deploy.fleet import microcontroller_summary

    notes = [why for t in project.config.targets() if (why := tools_missing(t)) is not None]
    data = summary.to_dict() | {
        "microcontroller": microcontroller_summary(project),
        "notes": notes,
    }
    _emit(data, as_json, _render_summary)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    """A figure, or "n/a" when it is missing.

    >>> _fmt(0.12345), _fmt(None), _fmt(3, "d")
    ('0.1235', 'n/a', '3')
    """
    return "n/a" if value is None else format(value, spec)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _render_summary(s: dict) -> None:
    m = s["metric"]
    console.print(
        f"[bold]ELEC2 replay[/]: {s['batches']} weekly batches, {s['rows_scored']} rows "
        f"scored, {s['seconds']} s"
    )
    console.print(f"alarms (cycles by cause): {_counts(s['alarms'])}")
    console.print(f"decisions: {_counts(s['decisions'])}")
    console.print(f"retrain reasons: {_counts(s['reasons'])}")
    for line in s["examples"]:
        console.print(f"  e.g. {line}", highlight=False)
    console.print(
        f"model versions trained: {s['retrains']} ({s['promotions']} promoted, "
        f"{s['rejected']} rejected by the gate)"
    )
    table = Table("model", m)
    table.add_row("continuously trained (retrainer)", _fmt(s["continuously_trained"]))
    table.add_row("same model, never retrained", _fmt(s["never_retrained"]))
    if s["previous_label"] is not None:
        table.add_row("naive: predict the previous label", _fmt(s["previous_label"]))
    console.print(table)
    for m in s.get("microcontroller", []):
        if m.get("skipped"):
            continue  # said once in the notes below
        console.print(
            f"microcontroller {m['target']} (version {m['version']}, {m['model']}): C agrees with "
            f"Python on {_fmt(m['agreement'])} of {m['rows']} rows, flash {m['flash_bytes']} B, "
            f"RAM {m['ram_bytes']} B, {_fmt(m['ms_per_prediction'], '.3f')} ms per prediction "
            f"(host compiler {m.get('host_compiler') or 'n/a'}, image by "
            f"{m.get('cross_toolchain') or 'n/a'}, board on {m.get('emulator') or 'n/a'})",
            highlight=False,
        )
    for note in s.get("notes", []):
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"report: {s['report']}")


@main.command()
@click.option(
    "--host",
    default=None,
    help="Address to listen on (default: service.host, "
    "127.0.0.1). Any other than loopback needs an API token first.",
)
@click.option("--port", type=int, default=None, help="Port (default: service.port, 8765).")
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Serve the API and dashboard only; run no cycles in this process.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, no_scheduler: bool) -> None:
    """Start the service: REST API, dashboard, scheduler, webhooks and /metrics."""
    from retrainer.service import serve as run_service

    run_service(
        _project(ctx),
        host=host,
        port=port,
        scheduler=not no_scheduler,
        echo=lambda line: console.print(line, highlight=False, markup=False),
    )


@main.group()
def token() -> None:
    """API tokens for `retrainer serve` (read or write scope)."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses it (shown as the actor).")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def token_create(ctx: click.Context, name: str, scope: str, as_json: bool) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    from retrainer.service.auth import create_token

    created, text = create_token(_project(ctx).store, name, scope=scope)
    _emit(
        created.to_dict() | {"token": text},
        as_json,
        lambda d: console.print(
            f"{d['scope']} token {d['name']!r} (prefix {d['prefix']}), shown once:\n{d['token']}",
            highlight=False,
            markup=False,
        ),
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens (prefix, name, scope; never the secret)."""
    from retrainer.service.auth import list_tokens

    data = [t.to_dict() for t in list_tokens(_project(ctx).store)]

    def render(rows: list[dict]) -> None:
        table = Table("prefix", "name", "scope", "created", "revoked")
        for t in rows:
            table.add_row(
                t["prefix"],
                t["name"],
                t["scope"],
                t["created_at"][:19],
                "yes" if t["revoked"] else "",
            )
        console.print(table)

    _emit(data, as_json, render)


@token.command("revoke")
@click.argument("prefix")
@click.pass_context
def token_revoke(ctx: click.Context, prefix: str) -> None:
    """Revoke the token with this prefix (or name)."""
    from retrainer.service.auth import revoke_token

    revoked = revoke_token(_project(ctx).store, prefix)
    console.print(f"revoked token {revoked.prefix} ({revoked.name})")


@main.command("check-large")
@click.argument("source")
@click.option("--scheduler", help="A running Dask scheduler (tcp://host:8786).")
@click.option("--workers", type=int, help="Worker processes of a LocalCluster (no --scheduler).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def check_large(
    ctx: click.Context, source: str, scheduler: str | None, workers: int | None, as_json: bool
) -> None:
    """Profile and check a large input (Parquet folder or glob) against the champion: streamed
    here (compute: local) or on Dask (compute: dask, --scheduler or --workers)."""
    from retrainer.compute import check_large
    from retrainer.profile import BatchProfile

    project = _project(ctx, scheduler)
    champion, schema = project.champion, project.schema()
    if champion is None or not champion.reference or schema is None:
        raise RetrainerError("no champion with a reference profile yet: run a cycle first")
    compute = project.config.compute
    if workers:
        compute = compute.model_copy(update={"backend": "dask", "workers": workers})
    checked = check_large(source, BatchProfile.from_dict(champion.reference), schema, compute)
    data = {
        "rows": checked.profile.n_rows,
        "partitions": checked.partitions,
        "alarms": [r.to_dict() for r in checked.alarms],
    }
    _emit(
        data,
        as_json,
        lambda d: console.print(
            f"{d['rows']:,} rows in {d['partitions']} partitions: {len(d['alarms'])} alarms"
            + "".join(
                f"\n  {a['kind']} {a['name']} {a['column']}: {a['message']}" for a in d["alarms"]
            ),
            highlight=False,
            markup=False,
        ),
    )


@main.group()
def db() -> None:
    """The metadata store's schema: migrations (Alembic) for SQLite and PostgreSQL."""


def _store_url(ctx: click.Context, url: str | None) -> str:
    from retrainer.config import Config

    return url or Config.from_yaml(ctx.obj["config"]).store_url


@db.command("upgrade")
@click.option("--url", help="The store URL (default: store.url of the project file).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def db_upgrade(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Upgrade the store's tables to the newest revision (a no-op when they are up to date)."""
    from retrainer.store.db import Store

    store = Store(_store_url(ctx, url))
    store.dispose()
    result = store.migration
    _emit(
        result.to_dict(),
        as_json,
        lambda d: console.print(
            f"applied {', '.join(d['applied'])}; the store is at revision {d['after']}"
            if d["applied"]
            else f"the store is up to date (revision {d['after']})",
            highlight=False,
        ),
    )


@db.command("current")
@click.option("--url", help="The store URL (default: store.url of the project file).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def db_current(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Show the store's revision, the newest one, and how its tables differ from retrainer's."""
    from sqlalchemy import create_engine

    from retrainer.store import migrate

    engine = create_engine(_store_url(ctx, url))
    try:
        current = migrate.current_revision(engine)
        data = {
            "current": current,
            "head": migrate.head_revision(),
            "differences": migrate.differences(engine) if current else [],
        }
    finally:
        engine.dispose()

    def render(d: dict) -> None:
        state = "up to date" if d["current"] == d["head"] else "run `retrainer db upgrade`"
        console.print(f"revision {d['current']} (newest {d['head']}): {state}", highlight=False)
        for line in d["differences"]:
            console.print(f"  differs: {line}", highlight=False, markup=False)

    _emit(data, as_json, render)


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the revision changes.")
def db_revision(message: str) -> None:
    """Write the next migration from what store/tables.py adds (for retrainer's developers)."""
    from retrainer.store.migrate import new_revision

    console.print(f"wrote {new_revision(message)}: read it, then `ruff format` it", highlight=False)


@main.command()
@click.option("--repair", is_flag=True, help="Delete orphans and temp files; fix stuck runs.")
@click.option(
    "--grace",
    default=3600.0,
    show_default=True,
    help="Seconds: younger orphans and temp files may belong to a write in progress; kept.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def doctor(ctx: click.Context, repair: bool, grace: float, as_json: bool) -> None:
    """Check hashes, orphans, aliases, stuck runs and temp files; exit 1 if problems remain."""
    from retrainer.doctor import doctor as check_store
    from retrainer.doctor import render

    report = check_store(_project(ctx), repair=repair, grace=grace)
    lines = "\n".join(render(report))
    _emit(report.to_dict(), as_json, lambda _: console.print(lines, markup=False, highlight=False))
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("policies", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--policies", "_policies_flag", is_flag=True, help="Optional; POLICIES follow it.")
@click.option("--data", type=click.Path(exists=True, path_type=Path), help="History (CSV/Parquet).")
@click.option(
    "--stream",
    type=click.Choice(["sea", "agrawal", "stagger", "hyperplane"]),
    default=None,
    help="Replay a synthetic stream with known drift points instead (adds the oracle policy).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --stream.")
@click.option("--weeks", type=int, default=None, help="Replay only the first N periods.")
@click.option("--period", default="7D", show_default=True, help="One batch per period.")
@click.option("--label-delay", type=int, default=1, show_default=True, help="In periods.")
@click.option("--every", default="14d", show_default=True, help="The fixed-schedule baseline.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("out/backtest"),
    show_default=True,
    help="Folder for the stores and the plot.",
)
@click.option(
    "--optimal",
    is_flag=True,
    help="Price schedules instead: candidates at every batch, the hindsight optimum, CARA, UPF, "
    "ours (retrainer.schedule); writes OUT/optimal.html.",
)
@click.option(
    "--cost",
    "costs",
    type=float,
    multiple=True,
    help="With --optimal: retrain cost in errors, a regressor's in absolute (gate.metric mae) or "
    "squared (rmse) error (repeat; default 50, 500, 5000 errors; a regressor's 0.2, 2 and 20 "
    "batches of a fresh model's error).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="With --optimal: worker processes that build the score matrix (default: one per core).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def backtest(
    ctx: click.Context,
    policies: tuple[Path, ...],
    _policies_flag: bool,
    data: Path | None,
    stream: str | None,
    seed: int,
    weeks: int | None,
    period: str,
    label_delay: int,
    every: str,
    out: Path,
    optimal: bool,
    costs: tuple[float, ...],
    jobs: int | None,
    as_json: bool,
) -> None:
    """Replay a labelled history under each policy file (a project file or its policy section)
    and the baselines (fixed schedule, never retrained); rank them on the batches every policy
    scored (each one's figure on all its batches is shown as well). Without --data: ELEC2 with
    the project file, or the shipped ELEC2 example when there is none. With --stream: a
    synthetic stream whose drift points are known, and an oracle that retrains right after
    them."""
    import yaml

    from retrainer.backtest import backtest as run_backtest
    from retrainer.backtest import first_periods, load_policy
    from retrainer.data.io import read_table

    config = Path(ctx.obj["config"])
    example = resources.files("retrainer").joinpath("examples/elec2.yaml").read_text()
    settings = yaml.safe_load(config.read_text() if config.exists() else example)
    drift_points: tuple = ()
    if stream is not None and data is not None:
        raise click.UsageError("--stream and --data exclude each other")
    if stream is not None:
        from retrainer.datasets.synthetic import drift_stream

        synthetic = drift_stream(stream, seed=seed, period=period)
        frame, drift_points = synthetic.frame, synthetic.drift_times
        columns = {"target": "target", "id_column": "id", "time_column": "timestamp"}
        settings["data"] = {"schema": "inferred", **columns}
    elif data is None:
        from retrainer.datasets import load_elec2

        frame = load_elec2()
        wanted = {k: (settings.get("data") or {}).get(k) for k in ("target", "time_column")}
        missing = {k: v for k, v in wanted.items() if v and v not in frame}
        if missing:
            named = ", ".join(f"data.{k} {v!r}" for k, v in missing.items())
            raise click.UsageError(
                f"without --data the backtest replays ELEC2, which has no {named} of {config}; "
                "give your labelled history with --data FILE (CSV or Parquet, one row per "
                "prediction with its target)"
            )
    else:
        frame = read_table(data)
    time_column = (settings.get("data") or {}).get("time_column")
    if not time_column:
        raise RetrainerError(f"{config}: a backtest needs data.time_column and data.id_column")
    if weeks is not None:
        zone = settings["data"].get("timezone")
        frame = first_periods(frame, time_column, period, weeks, zone)
    if optimal:
        from retrainer.schedule.compare import optimal_backtest, render_optimal

        columns = [TextColumn("candidates scored"), BarColumn(), MofNCompleteColumn()]
        with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as bar:
            task = bar.add_task("candidates", total=None, visible=False)
            priced = optimal_backtest(
                frame,
                settings,
                costs=costs or None,
                folder=out,
                period=period,
                label_delay=label_delay,
                on_model=lambda k, n: bar.update(task, completed=k, total=n, visible=True),
                jobs=jobs,
            )
        _emit(priced, as_json, lambda d: console.print(render_optimal(d), markup=False))
        return
    named = dict(load_policy(p) for p in policies)
    if "policy" in settings:
        named = {"configured": settings["policy"], **named}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, disable=as_json) as bar:
        task = bar.add_task("replaying", total=None)

        def on_batch(name: str, step: int, total: int) -> None:
            description = f"replaying under policy {name!r}"
            bar.update(task, description=description, completed=step, total=total)

        result = run_backtest(
            frame,
            settings,
            named,
            folder=out,
            period=period,
            label_delay=label_delay,
            every=every,
            plot=out / "backtest.png",
            drift_points=drift_points,
            on_batch=on_batch,
        )

    def render(d: dict) -> None:
        rows = d["table"]
        title = f"backtest: {d['metric']} {d['condition']}; own: on every batch it scored"
        table = Table(*rows[0].keys(), title=title)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(table)
        console.print(f"plot: {d['plot']}")

    _emit(result.to_dict(), as_json, render)


def _latest_batch(project) -> int:
    """The newest batch that has a diagnosis (for `explain` without an argument)."""
    from sqlalchemy import select

    from retrainer.store.tables import EventRow

    with project.store.session() as s:
        found = s.scalar(
            select(EventRow.batch_id)
            .where(EventRow.kind == "check", EventRow.batch_id.is_not(None))
            .order_by(EventRow.id.desc())
            .limit(1)
        )
    if found is None:
        raise RetrainerError("no batch was checked yet: run `retrainer cycle` first")
    return int(found)


def _render_decision(d: dict) -> None:
    console.print(f"[bold]decision {d['decision']}[/] (cycle {d['cycle']}, {d['at'][:19]})")
    console.print(d["words"], highlight=False, markup=False)
    for f in d["fired"]:
        console.print(f"  fired      {f['reason']}", highlight=False, markup=False)
    for s in d["suppressed"]:
        console.print(f"  suppressed {s['reason']}  <- {s['why']}", highlight=False, markup=False)
    for c in d["evidence"]["concept"]:
        console.print(f"  evidence   batch {c['batch']}: {c['message']}", highlight=False)
    for p in d["evidence"]["performance"]:
        band = f" [{_fmt(p['lower'])}, {_fmt(p['upper'])}]" if "lower" in p else ""
        model = p["role"] if p.get("version") is None else f"{p['role']} v{p['version']}"
        console.print(
            f"  evidence   batch {p['batch']} {model}: "
            f"{p['metric']}={_fmt(p['value'])}{band} on {p['n']} rows",
            highlight=False,
        )
    for x in d["evidence"]["drifted_columns"]:
        p_value = "" if x["p_value"] is None else f", p={x['p_value']:.3g}"
        console.print(
            f"  evidence   batch {x['batch']} {x['column'] or 'rows (multivariate)'}: {x['test']} "
            f"{_fmt(x['statistic'], '.4g')}{p_value} (threshold {x['threshold']})",
            highlight=False,
            markup=False,
        )
    for a in d["evidence"]["alarms"]:
        console.print(f"  alarm      {a['cause']}: {a['message']}", highlight=False, markup=False)


@main.command()
@click.argument("what", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def explain(ctx: click.Context, what: tuple[str, ...], as_json: bool) -> None:
    """Why a batch raised alarms (`explain [batch] [ID]`: ranked causes, evidence, actions and
    a proposed fix; default the newest checked batch), or why a decision went the way it did
    (`explain decision [ID]`: triggers fired and suppressed, evidence, reason in words; default
    the latest decision)."""
    kind, ids = ("batch", list(what)) if not what or what[0].isdigit() else (what[0], what[1:])
    if kind not in ("batch", "decision") or len(ids) > 1 or not all(i.isdigit() for i in ids):
        raise click.UsageError(
            "usage: retrainer explain [batch] [ID] | retrainer explain decision [ID]"
        )
    project = _project(ctx)
    if kind == "decision":
        from retrainer.views import decision_explanation

        found = decision_explanation(project, int(ids[0]) if ids else None)
        _emit(found, as_json, _render_decision)
        return
    batch = int(ids[0]) if ids else _latest_batch(project)
    stored = project.diagnosis(batch)
    if stored is None:
        raise RetrainerError(f"batch {batch} has no diagnosis yet: run `retrainer cycle` first")

    def render(d: dict) -> None:
        from retrainer.diagnosis import Alarm, rank

        console.print(f"[bold]batch {batch}[/]", highlight=False)
        diagnosis = rank([Alarm.from_dict(a) for a in d["alarms"]], d.get("shift", 0.0))
        for line in diagnosis.explain():
            console.print(line, highlight=False, markup=False)
        if d.get("fix"):
            console.print(
                f"accept it with: retrainer accept-fix {batch}", highlight=False, markup=False
            )

    _emit({"batch": batch, **stored}, as_json, render)


@main.command("accept-fix")
@click.argument("batch", type=int)
@click.option("--reason", default="accepted", show_default=True, help="Why (stored).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def accept_fix(ctx: click.Context, batch: int, reason: str, as_json: bool) -> None:
    """Accept the fix the diagnosis of BATCH proposed; later batches get it at ingest."""
    import yaml

    project = _project(ctx)
    fix = project.accept_fix(batch, reason=reason)

    def render(f: dict) -> None:
        console.print(f"accepted for batch {batch}; applied at ingest from now on:")
        console.print(yaml.safe_dump({"data": {"fixes": f}}), highlight=False, markup=False)
        console.print(
            f"to use it for batch {batch} too: retrainer release {batch} --reason ...",
            highlight=False,
            markup=False,
        )

    _emit(fix, as_json, render)


@main.command()
@click.argument("batch", type=int)
@click.option("--reason", required=True, help="Why the batch is fit for training (stored).")
@click.option("--force", is_flag=True, help="Release even if the quality checks still alarm.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def release(ctx: click.Context, batch: int, reason: str, force: bool, as_json: bool) -> None:
    """Release a quarantined BATCH (accepted fixes applied, quality checks re-run), or the rows
    set aside from it, so training windows include them."""
    result = _project(ctx).release(batch, reason, force=force)
    _emit(
        result,
        as_json,
        lambda r: console.print(
            r.get("message") or f"batch {r['id']} released: {r['status']}", highlight=False
        ),
    )


if __name__ == "__main__":
    main()
