"""Commands that only read the store start without the slow imports (skops enumerates
scikit-learn's estimators; SciPy, Alembic; pandas and pyarrow, a third of a second): checked in
a fresh interpreter's ``sys.modules``. The time itself is measured by ``bench/cli_latency.py``."""

import json
import subprocess
import sys

import pytest
import yaml

from retrainer.project import Project
from tests.conftest import project_settings, store_url

SLOW = ("skops", "sklearn", "scipy", "alembic", "fastapi", "matplotlib", "pandas", "pyarrow")
RUN = """
import json, sys
from retrainer.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(SLOW)))
    print("LOADED", json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, elec):
    root = tmp_path_factory.mktemp("startup")
    settings = project_settings()
    settings["store"]["url"] = store_url(root)
    (root / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(root / "retrainer.yaml")
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    project.ingest(elec.iloc[1344:1680].drop(columns="target"), key="week-5")
    project.cycle()
    return root


def loaded_by(folder, *args: str) -> list[str]:
    script = RUN.replace("json.loads(SLOW)", repr(json.dumps(SLOW)).join(["json.loads(", ")"]))
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("LOADED ")][-1]
    return json.loads(line.removeprefix("LOADED "))


@pytest.mark.parametrize(
    "args", [["--help"], ["status"], ["models"], ["explain"], ["explain", "decision"]]
)
def test_reading_commands_do_not_import_the_slow_libraries(folder, args):
    assert loaded_by(folder, *args) == []


def test_a_cycle_does_import_them(folder, elec):  # the check above can see an import
    project = Project.from_yaml(folder / "retrainer.yaml")
    project.ingest(elec.iloc[1680:2016], key="week-6")  # a labelled week: something to train on
    project.request_retrain("train once more")
    assert {"sklearn", "skops"} <= set(loaded_by(folder, "cycle"))
