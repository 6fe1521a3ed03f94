"""Every CLI error ends in one line naming what failed and exit 2; the traceback only with
``--debug`` (issue 18, item 6). The disk-full runs are real: a store on a 512 KiB tmpfs (when
this machine may mount one), and a process whose file size limit is reached (everywhere).
"""

import os
import resource
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from retrainer.cli import main
from tests.conftest import DATABASE_URL

WEEK = 48 * 7


def project_file(folder: Path, store: Path, artifacts: Path) -> Path:
    path = folder / "retrainer.yaml"
    path.write_text(
        "data: {target: target, id_column: id, time_column: timestamp}\n"
        f"store: {{url: 'sqlite:///{store}', artifacts: '{artifacts}'}}\n"
        "trainer: {estimator: sklearn.tree.DecisionTreeClassifier, min_rows: 50}\n"
    )
    return path


def cli(folder: Path, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", "from retrainer.cli import main; main()", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited if limit else None,
        env={**os.environ, "RETRAINER_DEBUG": ""},
    )


def assert_one_line(result: subprocess.CompletedProcess, *names: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in lines[0], lines[0]


@pytest.fixture
def tmpfs():
    """A 512 KiB tmpfs: a real full disk (skipped where mounting is not allowed)."""
    if DATABASE_URL:
        pytest.skip("the disk-full store is an SQLite file")
    where = Path(f"/tmp/retrainer-full-{uuid.uuid4().hex[:8]}")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", str(where)], check=True)
    where.rmdir()


def test_a_full_disk_is_one_line_and_exit_2(tmpfs, tmp_path, elec):
    project_file(tmp_path, tmpfs / "store.db", tmpfs / "artifacts")
    results = []
    for i in range(16):  # 8 weeks a file: the 512 KiB disk fills on the way
        elec.iloc[i * 8 * WEEK : (i + 1) * 8 * WEEK].to_csv(tmp_path / f"week-{i}.csv", index=False)
        results.append(cli(tmp_path, "ingest", f"week-{i}.csv"))
        if results[-1].returncode:
            break
    assert [r.returncode for r in results[:-1]] == [0] * (len(results) - 1)
    assert_one_line(results[-1], "No space left on device")
    debug = cli(tmp_path, "--debug", "ingest", f"week-{len(results) - 1}.csv")
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_file_size_limit_is_one_line_and_exit_2(tmp_path, elec):
    if DATABASE_URL:
        pytest.skip("the size-limited store is an SQLite file")
    project_file(tmp_path, tmp_path / "store.db", tmp_path / "artifacts")
    elec.iloc[:WEEK].to_csv(tmp_path / "first.csv", index=False)
    elec.iloc[WEEK : 40 * WEEK].to_csv(tmp_path / "more.csv", index=False)
    assert cli(tmp_path, "ingest", "first.csv").returncode == 0
    largest = max(
        f.stat().st_size for f in tmp_path.rglob("*") if f.is_file() and f.suffix != ".csv"
    )
    result = cli(tmp_path, "ingest", "more.csv", limit=largest + 4096)
    assert_one_line(result)
    assert "File too large" in result.stderr or "disk I/O error" in result.stderr


def test_errors_of_retrainer_stay_one_line_with_their_message(tmp_path):
    (tmp_path / "retrainer.yaml").write_text("data: {target: y}\n")
    (tmp_path / "bad.csv").write_text("")
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "retrainer.yaml"), "promote", "7"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
