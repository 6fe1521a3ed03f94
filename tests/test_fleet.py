"""The fleet: telemetry reports from the compiled sketch are stored and checked for drift like a
batch profile (same results as checking the Python profile of the same rows), devices are listed
with their version, rollouts offer bundles to a deterministic share of devices, rollback works."""

import json
import shutil
import struct
import zlib

import pytest
import yaml
from click.testing import CliRunner

from retrainer.checks.drift import check_drift
from retrainer.cli import main
from retrainer.deploy import fleet
from retrainer.errors import ConflictError, DataError, NotFoundError
from retrainer.profile.batch import BatchProfile
from tests.conftest import project_settings
from tests.tinyml_helpers import (
    FEATURES,
    TARGET,
    TARGETS,
    build_sketch,
    bundled_version,
    run_sketch,
)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler")


@pytest.fixture
def setup(make_project, elec, tmp_path):
    project = make_project(deploy_targets=TARGETS)
    train = elec.iloc[20_000:21_344]
    project.ingest(train, key="train")
    version, layout, model, bundle = bundled_version(project, train)
    files = {p.name: p.read_text() for p in bundle.iterdir()}
    binary = build_sketch(tmp_path / "build", files)
    return {"project": project, "version": version, "binary": binary, "train": train}


def test_a_report_is_stored_and_checked_like_the_python_profile(setup, elec):
    project, version = setup["project"], setup["version"]
    week = elec.iloc[35_000:35_336]  # months later: ELEC2 has drifted
    stored = fleet.ingest_telemetry(project, run_sketch(setup["binary"], week[FEATURES], "m-1", 3))
    assert (stored.device, stored.target, stored.version, stored.n_rows, stored.new) == (
        "m-1",
        TARGET,
        version,
        336,
        True,
    )
    # Independent reference: drift checks on the Python profile of the same rows.
    reference = BatchProfile.from_dict(project.registry.get(version).reference)
    python = BatchProfile.from_frame(week[FEATURES], project.schema(), edges=reference.edges())
    d = project.config.checks.drift
    expected = check_drift(
        reference, python, alpha=d.alpha, psi_threshold=d.psi_threshold, min_rows=d.min_rows
    )
    drifted = {f"{r.name}:{r.column}" for r in expected if r.alarm}
    assert drifted and drifted <= set(stored.alarms)
    again = fleet.ingest_telemetry(project, run_sketch(setup["binary"], week[FEATURES], "m-1", 3))
    assert not again.new and again.id == stored.id and again.alarms == stored.alarms
    events = [e for e in project.status()["events"] if e["kind"] == "telemetry"]
    assert events and "device m-1" in events[-1]["message"]
    view = fleet.fleet(project)
    assert [(x["device"], x["version"], x["offered"]) for x in view["devices"]] == [
        ("m-1", version, version)
    ]
    assert view["checks"][str(version)]["dataset_drift"]["alarm"] is True


def test_fleet_data_from_the_reference_period_raises_fewer_alarms(setup):
    project, train = setup["project"], setup["train"]
    rows = train[FEATURES].sample(336, random_state=0)  # drawn from the reference itself
    same = fleet.ingest_telemetry(project, run_sketch(setup["binary"], rows, "a"))
    assert not any(a.startswith("dataset_drift") for a in same.alarms)


def test_a_report_for_a_version_without_bundle_is_refused(setup, elec):
    project = setup["project"]
    data = run_sketch(setup["binary"], elec.iloc[:10][FEATURES])
    shutil.rmtree(project.bundle_folder())
    with pytest.raises(DataError, match="has no bundle for 'cortex-m4f'"):
        fleet.ingest_telemetry(project, data)


def test_a_report_naming_an_unknown_version_says_so(setup, elec):
    data = run_sketch(setup["binary"], elec.iloc[:10][FEATURES])
    data = data[:20] + struct.pack("<I", 99) + data[24:-4]
    data += struct.pack("<I", zlib.crc32(data))
    with pytest.raises(DataError, match="model version 99, which is unknown.*known: 1"):
        fleet.ingest_telemetry(setup["project"], data)


def test_a_conflicting_report_for_a_stored_sequence_is_refused_and_kept_nowhere(setup, elec):
    project = setup["project"]
    first = run_sketch(setup["binary"], elec.iloc[35_000:35_100][FEATURES], "dup-1", 4)
    other = run_sketch(setup["binary"], elec.iloc[36_000:36_120][FEATURES], "dup-1", 4)
    stored = fleet.ingest_telemetry(project, first)
    with pytest.raises(ConflictError, match="sequence 4.*rows, profile, predictions differ"):
        fleet.ingest_telemetry(project, other)
    again = fleet.ingest_telemetry(project, first)  # the same report again is fine
    assert (again.id, again.new) == (stored.id, False)
    device = fleet.devices(project)[0]
    assert (device["reports"], device["rows"]) == (1, 100)
    assert fleet.fleet_profile(project, setup["version"]).n_rows == 100
    events = [e for e in project.status()["events"] if e["kind"] == "telemetry"]
    assert len(events) == 1


def test_rollouts_take_a_deterministic_growing_share_and_roll_back(setup, elec):
    project, v1 = setup["project"], setup["version"]
    v2, *_ = bundled_version(project, elec.iloc[22_000:23_344])
    devices = [f"dev-{i}" for i in range(2000)]
    with pytest.raises(NotFoundError):
        fleet.rollback(project, "nope")
    first = fleet.start_rollout(project, TARGET, v2, 30)
    assert (first.version, first.base, first.percent) == (v2, v1, 30.0)
    at30 = {d for d in devices if fleet.assignment(project, d, TARGET).version == v2}
    assert 0.26 * 2000 < len(at30) < 0.34 * 2000  # binomial(2000, 0.3): +-5 sd
    fleet.start_rollout(project, TARGET, v2, 60)
    at60 = {d for d in devices if fleet.assignment(project, d, TARGET).version == v2}
    assert at30 < at60 and 0.56 * 2000 < len(at60) < 0.64 * 2000
    moved = fleet.assignment(project, sorted(at30)[0], TARGET)
    assert moved.rollback_version == v1 and moved.manifest_url.endswith(
        f"{v2}/bundles/{TARGET}/manifest"
    )
    back = fleet.rollback(project, TARGET, reason="bad field results")
    assert (back.version, back.percent) == (v1, 100.0)
    assert {fleet.assignment(project, d, TARGET).version for d in devices[:200]} == {v1}
    with pytest.raises(DataError, match="percent"):
        fleet.start_rollout(project, TARGET, v2, 0)
    with pytest.raises(NotFoundError, match="version 99 does not exist"):
        fleet.start_rollout(project, TARGET, 99, 10)


def test_cli_ingest_telemetry_fleet_and_rollout(setup, elec, tmp_path):
    project = setup["project"]
    good = tmp_path / "good.bin"
    good.write_bytes(run_sketch(setup["binary"], elec.iloc[35_000:35_100][FEATURES], "cli-1"))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(good.read_bytes()[:-3])
    clash = tmp_path / "clash.bin"  # same device and sequence as good.bin, other rows
    clash.write_bytes(run_sketch(setup["binary"], elec.iloc[36_000:36_050][FEATURES], "cli-1"))
    settings = project_settings(deploy_targets=TARGETS)
    settings["store"]["url"] = project.config.store_url
    config = tmp_path / "retrainer.yaml"
    config.write_text(yaml.safe_dump(settings))
    runner = CliRunner()
    result = runner.invoke(main, ["-c", str(config), "ingest-telemetry", str(good), str(bad)])
    assert result.exit_code == 2
    assert "stored: device cli-1" in result.output and "bad.bin" in result.output
    result = runner.invoke(main, ["-c", str(config), "ingest-telemetry", str(clash)])
    assert result.exit_code == 2 and "kept nowhere" in result.output
    shown = runner.invoke(main, ["-c", str(config), "fleet", "--json"])
    assert json.loads(shown.output)["devices"][0]["device"] == "cli-1"
    rolled = runner.invoke(
        main, ["-c", str(config), "rollout", TARGET, str(setup["version"]), "--percent", "10"]
    )
    assert rolled.exit_code == 0 and "to 10% of devices" in rolled.output
