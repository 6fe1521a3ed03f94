"""Object storage (issue 20 item 2) against a real S3-compatible server on loopback: moto's
server behind a TCP proxy that counts the requests it forwards and can cut an upload halfway.

Batches and labels come from ``s3://`` prefixes, artifacts (batches as Parquet, models as
skops) go to a bucket, and ``retrainer run`` watches a prefix. Skipped without s3fs and moto
(``pip install -e '.[test]'``).
"""

import io
import json
import re
import socket
import subprocess
import sys
import threading
import uuid
from hashlib import sha256
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from retrainer.cli import main  # noqa: E402
from retrainer.doctor import doctor  # noqa: E402
from retrainer.errors import IntegrityError, StoreError  # noqa: E402
from retrainer.project import Project  # noqa: E402
from retrainer.store.tables import BatchRow  # noqa: E402
from retrainer.watch import FolderWatch  # noqa: E402
from tests.conftest import project_settings, store_url  # noqa: E402

WEEK = 48 * 7
README = Path(__file__).parent.parent / "README.md"
_REQUEST = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.1\r\n")


class Proxy:
    """Forwards TCP connections to the S3 server, noting each request line (method and path).
    While ``cut_puts`` > 0, a PUT with a body is forwarded up to half its body, then both
    connections are reset: the server never gets the whole object, the client an error."""

    def __init__(self, port: int):
        self.target = port
        self.requests: list[tuple[str, str]] = []
        self.cut_puts = 0
        self.cut = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        head = None  # the headers of a PUT being cut, until they are complete
        budget = None  # the body bytes of that PUT still let through
        try:
            while data := source.recv(65536):
                if requests and head is None and budget is None:
                    for match in _REQUEST.finditer(data):
                        self.requests.append((match[1].decode(), match[2].decode()))
                        if match[1] == b"PUT" and self.cut_puts > 0:
                            sink.sendall(data[: match.start()])
                            head, data = data[match.start() :], b""
                            break
                if head is not None:
                    head += data
                    if b"\r\n\r\n" not in head:
                        continue
                    headers, _, data = head.partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length:\s*(\d+)", headers)
                    sink.sendall(headers + b"\r\n\r\n")
                    head, budget = None, (int(length[1]) if length else 0) // 2
                    if budget == 0:  # no body (a copy): nothing to cut
                        budget = None
                if budget is not None:
                    sink.sendall(data[:budget])
                    budget -= min(budget, len(data))
                    if budget == 0:  # half the body went through: reset both sides
                        self.cut_puts -= 1
                        self.cut += 1
                        return
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _reset(source)
            _reset(sink)

    def close(self) -> None:
        self.listener.close()


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    except OSError:
        pass


@pytest.fixture(scope="module")
def server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    proxy = Proxy(port)
    yield proxy
    proxy.close()
    moto.stop()


@pytest.fixture
def s3(server, monkeypatch):
    """A fresh bucket; credentials from the environment, as fsspec reads them."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = {"endpoint_url": f"http://127.0.0.1:{server.port}"}
    fs = s3fs.S3FileSystem(**options)
    bucket = f"t{uuid.uuid4().hex[:16]}"
    fs.mkdir(bucket)
    server.requests.clear()
    server.cut_puts = server.cut = 0
    return fs, bucket, options


def put_csv(fs, url: str, frame) -> None:
    fs.invalidate_cache()
    fs.pipe_file(url, frame.to_csv(index=False).encode())


def s3_project(tmp_path, bucket, options, *, artifacts=True, **data):
    settings = project_settings()
    settings["store"] = {"url": store_url(tmp_path), "artifacts": "artifacts"}
    if artifacts:
        settings["store"] |= {"artifacts": f"s3://{bucket}/artifacts", "storage_options": options}
    settings["data"] |= {"storage_options": options, **data}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    return Project.from_yaml(tmp_path / "retrainer.yaml")


def n_batches(project) -> int:
    with project.store.session() as s:
        return s.scalar(select(func.count()).select_from(BatchRow))


def test_new_objects_are_ingested_once_and_resent_ones_recognised(tmp_path, s3, server, elec):
    fs, bucket, options = s3
    for week in range(3):
        put_csv(fs, f"{bucket}/in/{week}.csv", elec.iloc[week * WEEK : (week + 1) * WEEK])
    fs.pipe_file(f"{bucket}/in/notes.txt", b"not data")
    project = s3_project(tmp_path, bucket, options, artifacts=False, source=f"s3://{bucket}/in/")
    watch = FolderWatch(project)
    assert watch.scan() == 3 and [o.name for o in watch.batches] == ["0.csv", "1.csv", "2.csv"]
    batches, _ = watch.ingest_next(10)
    assert [b.key.split(":")[:2] for b in batches] == [["file", f"{w}.csv"] for w in range(3)]
    assert [b.n_rows for b in batches] == [WEEK] * 3 and watch.failed == {}
    sent = [elec.iloc[w * WEEK : (w + 1) * WEEK].to_csv(index=False).encode() for w in range(3)]
    assert [b.key.split(":")[2] for b in batches] == [sha256(x).hexdigest()[:16] for x in sent]

    server.requests.clear()  # an idle poll: one listing, nothing downloaded
    assert watch.scan() == 0
    assert [m for m, _ in server.requests] == ["GET"] and "list-type=2" in server.requests[0][1]

    # the same bytes under another name, and one object overwritten with new rows
    fs.copy(f"{bucket}/in/1.csv", f"{bucket}/in/1-again.csv")
    put_csv(fs, f"{bucket}/in/2.csv", elec.iloc[3 * WEEK : 4 * WEEK])
    assert watch.scan() == 2
    batches, _ = watch.ingest_next(10)
    assert [(b.n_rows, b.new) for b in batches] == [(WEEK, False), (WEEK, True)]
    assert n_batches(project) == 4

    server.requests.clear()  # a restarted watch remembers the objects it took: no download
    again = FolderWatch(Project.from_yaml(tmp_path / "retrainer.yaml"))
    assert again.scan() == 0 and [m for m, _ in server.requests] == ["GET"]


def test_late_labels_from_a_prefix_join_the_batches(tmp_path, s3, elec):
    fs, bucket, options = s3
    weeks = elec.iloc[: 2 * WEEK]
    put_csv(fs, f"{bucket}/in/batch.csv", weeks.drop(columns="target"))
    project = s3_project(
        tmp_path,
        bucket,
        options,
        source=f"s3://{bucket}/in",
        labels=f"s3://{bucket}/labels/",
    )
    watch = FolderWatch(project)
    watch.scan()
    (batch,), _ = watch.ingest_next(5)
    assert batch.n_labelled == 0
    put_csv(fs, f"{bucket}/labels/week-1.csv", weeks.iloc[:WEEK][["id", "target"]])
    put_csv(fs, f"{bucket}/labels/week-2.csv", weeks.iloc[WEEK:][["id", "target"]])
    assert watch.scan() == 2
    _, labels = watch.ingest_next(5)
    assert [x.matched for x in labels] == [WEEK, WEEK]
    with project.store.session() as s:
        row = s.get(BatchRow, batch.id)
        assert row.n_labelled == 2 * WEEK
        joined = project.batch_frame(row)["target"].to_numpy()
    assert (joined == weeks["target"].to_numpy()).all()


def test_ingest_takes_a_url_prefix_or_one_object_on_the_command_line(
    tmp_path, s3, elec, monkeypatch
):
    fs, bucket, options = s3
    monkeypatch.chdir(tmp_path)
    for week in range(2):
        part = elec.iloc[week * WEEK : (week + 1) * WEEK].drop(columns="target")
        put_csv(fs, f"{bucket}/in/{week}.csv", part)
    put_csv(fs, f"{bucket}/labels/l.csv", elec.iloc[:WEEK][["id", "target"]])
    s3_project(tmp_path, bucket, options, artifacts=False)
    result = CliRunner().invoke(main, ["ingest", f"s3://{bucket}/in/", "--json"])
    assert result.exit_code == 0, result.output
    assert [(r["file"], r["n_rows"], r["new"]) for r in json.loads(result.stdout)] == [
        (f"s3://{bucket}/in/{w}.csv", WEEK, True) for w in range(2)
    ]
    again = CliRunner().invoke(main, ["ingest", f"s3://{bucket}/in/1.csv", "--json"])
    assert [r["new"] for r in json.loads(again.stdout)] == [False]  # the same bytes, known
    labels = CliRunner().invoke(main, ["ingest", "--labels", f"s3://{bucket}/labels/l.csv"])
    assert labels.exit_code == 0 and f"s3://{bucket}/labels/l.csv: {WEEK} joined" in labels.stdout
    empty = CliRunner().invoke(main, ["ingest", f"s3://{bucket}/nothing/"])
    assert empty.exit_code != 0 and f"s3://{bucket}/nothing/: no data files" in empty.output
    assert n_batches(Project.from_yaml(tmp_path / "retrainer.yaml")) == 2


def test_artifacts_on_a_bucket_are_verified_on_read(tmp_path, s3, elec):
    fs, bucket, options = s3
    project = s3_project(tmp_path, bucket, options)
    project.ingest(elec.iloc[: 4 * WEEK], key="history")
    assert project.cycle().decision["action"] == "retrain"
    champion = project.champion
    sha = champion.lineage["artifact"]
    key = f"{bucket}/artifacts/{sha[:2]}/{sha}"
    fs.invalidate_cache()
    assert fs.exists(key) and fs.find(f"{bucket}/artifacts/.tmp") == []
    reopened = Project.from_yaml(tmp_path / "retrainer.yaml")  # another process, same bucket
    features = elec.iloc[4 * WEEK : 5 * WEEK][project.features()]
    expected = project.load_model().predict(features)
    assert (reopened.load_model().predict(features) == expected).all()
    assert sha in set(reopened.artifacts.shas())
    assert doctor(reopened).ok  # every referenced object verifies against its hash

    fs.pipe_file(key, b"PK\x03\x04 swapped")  # a damaged object is refused, naming its URL
    with pytest.raises(IntegrityError, match=rf"s3://{bucket}/artifacts/{sha[:2]}/{sha}"):
        Project.from_yaml(tmp_path / "retrainer.yaml").load_model()


def test_a_server_failing_mid_upload_registers_nothing(tmp_path, s3, server, elec):
    fs, bucket, options = s3
    options = options | {"config_kwargs": {"retries": {"max_attempts": 1}}}
    project = s3_project(tmp_path, bucket, options)
    project.ingest(elec.iloc[: 4 * WEEK], key="history")
    from sklearn.tree import DecisionTreeClassifier

    data = elec.iloc[: 4 * WEEK]
    model = DecisionTreeClassifier(max_depth=4).fit(data[project.features()], data["target"])
    put_csv(fs, f"{bucket}/in/week-5.csv", elec.iloc[4 * WEEK : 5 * WEEK])  # for later
    server.cut_puts = 100
    with pytest.raises(
        StoreError,
        match=r"cannot write artifact [0-9a-f]{64} to s3://.*"
        r"nothing was registered",
    ):
        project.registry.register(model, lineage={}, metrics={})
    assert server.cut >= 1 and project.models == []
    fs.invalidate_cache()
    artifacts = fs.find(f"{bucket}/artifacts")
    assert len(artifacts) == 1  # the batch ingested before, no model and no temporary object

    result = project.cycle()  # a retrain whose model cannot be uploaded fails, says why
    assert result.run["status"] == "failed" and "cannot write artifact" in result.run["message"]
    assert project.models == [] and project.champion is None

    # a batch arriving meanwhile is not stored, says why, and is taken once the server is back
    project = s3_project(tmp_path, bucket, options, source=f"s3://{bucket}/in/")
    watch = FolderWatch(project)
    assert watch.scan() == 1 and watch.ingest_next(5) == ([], [])
    (error,) = watch.failed.values()
    assert error.startswith(f"s3://{bucket}/in/week-5.csv: cannot write artifact ")
    assert n_batches(project) == 1

    server.cut_puts = 0  # the server is back
    assert watch.scan() == 1
    (batch,), _ = watch.ingest_next(5)
    assert batch.n_rows == WEEK and watch.failed == {}
    project.request_retrain("server back")
    assert project.cycle().run["status"] == "succeeded" and project.champion.version == 1


def test_one_cut_upload_is_retried_by_the_client(tmp_path, s3, server, elec):
    fs, bucket, options = s3
    project = s3_project(tmp_path, bucket, options)
    server.cut_puts = 1
    batch = project.ingest(elec.iloc[:WEEK], key="week")
    assert server.cut == 1 and n_batches(project) == 1
    with project.store.session() as s:
        sha = s.get(BatchRow, batch.id).artifact
    assert len(project.artifacts.get_frame(sha)) == WEEK  # whole, and verified on read
    fs.invalidate_cache()
    assert fs.find(f"{bucket}/artifacts") == [f"{bucket}/artifacts/{sha[:2]}/{sha}"]


def test_run_watches_a_prefix(tmp_path, s3, elec, monkeypatch):
    fs, bucket, options = s3
    monkeypatch.chdir(tmp_path)
    put_csv(fs, f"{bucket}/in/000-history.csv", elec.iloc[: 4 * WEEK])
    for week in range(1, 4):
        part = elec.iloc[(3 + week) * WEEK : (4 + week) * WEEK]
        put_csv(fs, f"{bucket}/in/{week:03d}.csv", part)
    s3_project(tmp_path, bucket, options, source=f"s3://{bucket}/in/")
    settings = yaml.safe_load((tmp_path / "retrainer.yaml").read_text())
    settings["run"] = {"max_batches_per_cycle": 2}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "2", "--json"])
    assert result.exit_code == 0, result.output
    decoder, text, cycles = json.JSONDecoder(), result.stdout, []
    while text.strip():
        cycle, end = decoder.raw_decode(text.lstrip())
        cycles.append(cycle)
        text = text.lstrip()[end:]
    assert [c["batches"] for c in cycles] == [[1, 2], [3, 4]]
    assert cycles[0]["champion"] == 1
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    sha = project.champion.lineage["artifact"]
    fs.invalidate_cache()
    assert fs.exists(f"{bucket}/artifacts/{sha[:2]}/{sha}")
    assert io.BytesIO(fs.cat_file(f"{bucket}/artifacts/{sha[:2]}/{sha}")).read(2) == b"PK"


def test_the_readme_project_file_runs_as_written(tmp_path, server, s3, elec, monkeypatch):
    """The README's object-storage project file, with the test server's endpoint and buckets."""
    fs, _, options = s3
    text = README.read_text(encoding="utf-8").split("## Object storage: S3, GCS, Azure", 1)[1]
    (block,) = re.findall(
        r"```yaml\n(.*?)```", re.split(r"\n##+ ", text, maxsplit=1)[0], flags=re.S
    )
    suffix = uuid.uuid4().hex[:8]
    block = block.replace("s3://ml-data/", f"s3://ml-data-{suffix}/")
    block = block.replace("s3://ml-artifacts/", f"s3://ml-artifacts-{suffix}/")
    settings = yaml.safe_load(block.replace("http://minio.internal:9000", options["endpoint_url"]))
    settings["store"]["url"] = store_url(tmp_path)
    for bucket in (f"ml-data-{suffix}", f"ml-artifacts-{suffix}"):
        fs.mkdir(bucket)
    frame = elec.rename(
        columns={"id": "customer_id", "timestamp": "event_time", "target": "churned"}
    )
    put_csv(fs, f"ml-data-{suffix}/churn/batches/2024-01.csv", frame.iloc[: 4 * WEEK])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "1"])
    assert result.exit_code == 0, result.output
    assert "champion v1" in result.output
    sha = Project.from_yaml(tmp_path / "retrainer.yaml").champion.lineage["artifact"]
    fs.invalidate_cache()
    assert fs.exists(f"ml-artifacts-{suffix}/churn/{sha[:2]}/{sha}")


def test_opening_a_project_on_a_bucket_does_not_import_s3fs(tmp_path):
    """s3fs takes seconds to import: a command that only reads the store does not pay it."""
    settings = project_settings()
    settings["store"] = {"url": store_url(tmp_path), "artifacts": "s3://bucket/artifacts"}
    settings["data"]["source"] = "s3://bucket/in/"
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    code = (
        "import sys; from retrainer.project import Project; "
        f"p = Project.from_yaml({str(tmp_path / 'retrainer.yaml')!r}); "
        "assert p.champion is None and p.status()['champion'] is None; "
        "print(sorted(m for m in ('s3fs', 'fsspec', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
