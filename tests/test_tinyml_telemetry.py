"""The device telemetry sketch: compiled with the host cc and fed real ELEC2 rows, its report
decodes to the profile retrainer computes in Python on the same rows (counts exactly), and bad
reports are refused with errors that name the problem."""

import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from retrainer.data.schema import ColumnSpec, Schema
from retrainer.deploy.tinyml import export_c
from retrainer.deploy.tinyml.telemetry import (
    HEADER,
    TelemetryLayout,
    decode_report,
    read_header,
    sketch_files,
)
from retrainer.errors import DataError
from retrainer.profile.batch import BatchProfile
from tests.tinyml_helpers import FEATURES, TARGET, build_sketch, run_sketch

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("cc") is None, reason="needs a host C compiler"
)
COUNTS = ("count", "nulls", "non_finite", "below_min", "above_max", "hist", "max_run")


@pytest.fixture(scope="module")
def sketch(elec, tmp_path_factory):
    """A tree trained on 4 weeks of ELEC2, its reference profile, layout and compiled sketch."""
    from sklearn.tree import DecisionTreeClassifier

    train = elec.iloc[20_000:21_344]
    schema = Schema.infer(train[FEATURES])
    reference = BatchProfile.from_frame(train[FEATURES], schema)
    model = DecisionTreeClassifier(max_depth=6, random_state=0).fit(train[FEATURES], train.target)
    export = export_c(model, feature_names=FEATURES)
    layout = TelemetryLayout.build(
        reference, FEATURES, version=7, classes=export.classes, schema=schema
    )
    files = {**export.files, **sketch_files(layout, target=TARGET)}
    binary = build_sketch(tmp_path_factory.mktemp("sketch"), files)
    return {
        "schema": schema,
        "reference": reference,
        "model": model,
        "layout": layout,
        "binary": binary,
    }


def _python_profile(sketch, frame):
    return BatchProfile.from_frame(frame, sketch["schema"], edges=sketch["reference"].edges())


def _assert_same(device, python, frame):
    for name in FEATURES:
        d, p = device.columns[name], python.columns[name]
        for key in COUNTS:
            assert getattr(d, key) == getattr(p, key), (name, key)
        assert d.edges == p.edges
        if p.values:
            values = frame[name].to_numpy(dtype="float64")
            finite = values[np.isfinite(values)].astype(np.float32).astype(np.float64)
            assert d.min == finite.min() and d.max == finite.max()  # the float32 the device saw
            assert d.mean == pytest.approx(p.mean, rel=1e-6, abs=1e-9)
            assert d.m2 == pytest.approx(p.m2, rel=1e-5, abs=1e-9)
            if p.skewness is not None:  # float32 inputs: compare the standardised moments
                assert d.skewness == pytest.approx(p.skewness, abs=1e-4)
                assert d.kurtosis == pytest.approx(p.kurtosis, abs=1e-4)
            assert d.sums == pytest.approx(p.sums, rel=1e-6, abs=1e-9)


def test_the_device_profile_of_an_elec2_week_equals_the_python_profile(elec, sketch):
    week = elec.iloc[30_000:30_336]  # a later week: drifted, partly outside the reference range
    data = run_sketch(sketch["binary"], week[FEATURES], device="meter-17", sequence=4)
    assert len(data) == sketch["layout"].report_bytes
    report = decode_report(data, sketch["layout"])
    assert report.header.to_dict() | {"fingerprint": None} == {
        "device": "meter-17",
        "target": TARGET,
        "version": 7,
        "sequence": 4,
        "n_rows": 336,
        "fingerprint": None,
        "format": 1,
    }
    python = _python_profile(sketch, week[FEATURES])
    assert report.profile.n_rows == python.n_rows == 336
    _assert_same(report.profile, python, week)
    assert any(c.hist[0] + c.hist[-1] for c in python.columns.values())  # outer bins are used
    labels = pd.Series(sketch["model"].predict(week[FEATURES])).astype(str).value_counts()
    assert report.predictions.categories == labels.to_dict()
    # The decoded profile merges with the server's profiles like any batch profile.
    merged = report.profile.merge(python)
    assert merged.columns["period"].hist == tuple(2 * c for c in python.columns["period"].hist)


def test_nan_infinity_and_out_of_range_values_are_counted_like_python(elec, sketch):
    week = elec.iloc[40_000:40_336][FEATURES].copy()
    week.iloc[::5, 0] = np.nan
    week.iloc[1::7, 1] = np.inf
    week.iloc[2::9, 2] = -np.inf
    week.iloc[3::4, 3] = 5.0  # above the schema's max and the reference's last edge
    week.iloc[:40, 4] = 0.25  # a stuck sensor: a run of 40
    week.iloc[::11, 5] = -1.0  # below the schema's min
    report = decode_report(run_sketch(sketch["binary"], week), sketch["layout"])
    python = _python_profile(sketch, week)
    _assert_same(report.profile, python, week)
    assert python.columns["period"].nulls == 68
    assert python.columns["nswprice"].non_finite == 48
    assert python.columns["vicprice"].above_max == 84
    assert python.columns["vicdemand"].max_run == 40
    assert python.columns["transfer"].below_min >= 31


def test_an_empty_report_decodes_to_an_empty_profile(sketch):
    report = decode_report(run_sketch(sketch["binary"], np.empty((0, 6))), sketch["layout"])
    column = report.profile.columns["nswprice"]
    assert (report.profile.n_rows, column.count, column.mean, column.max_run) == (0, 0, None, 0)
    assert sum(column.hist) == 0 and report.predictions.count == 0


def _recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


@pytest.fixture(scope="module")
def report_bytes(elec, sketch):
    return run_sketch(sketch["binary"], elec.iloc[30_000:30_100][FEATURES], device="d1")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda b: b[:50], "truncated: 50 bytes"),
        (lambda b: b[:-10], "checksum mismatch"),
        (lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:], "checksum mismatch"),
        (lambda b: _recrc(b"XXXX" + b[4:]), "not a retrainer report"),
        (lambda b: _recrc(b[:4] + struct.pack("<H", 2) + b[6:]), "format version 2"),
        (lambda b: _recrc(b[:20] + struct.pack("<I", 8) + b[24:]), "model version 8"),
        (lambda b: _recrc(b[:12] + bytes(8) + b[20:]), "made by a sketch for another model"),
        (lambda b: _recrc(b[:32] + b"bad id!" + b[39:]), "device id"),
        (lambda b: _recrc(b[:-8] + b[-8:-4] + b"\0\0\0\0" + b[-4:]), "bytes, version 7"),
        (lambda b: _recrc(b[:28] + struct.pack("<I", 99) + b[32:]), "!= 99 rows"),
        (lambda b: "text", "expected bytes"),
    ],
)
def test_bad_reports_are_refused_with_the_problem_named(report_bytes, sketch, change, message):
    bad = change(report_bytes)
    with pytest.raises(DataError, match=message):
        decode_report(bad, sketch["layout"])


def _set(data: bytes, offset: int, fmt: str, value) -> bytes:
    """``data`` with one field of the first feature block (at HEADER.size) changed, CRC fixed."""
    changed = bytearray(data)
    struct.pack_into(fmt, changed, HEADER.size + offset, value)
    return _recrc(bytes(changed))


@pytest.mark.parametrize(
    "offset,fmt,value,message",
    [
        (32, "<d", 1e6, r"feature 'period'.*mean 1000000.0 lies outside \[min"),
        (32, "<d", float("nan"), "mean is nan, not a finite number"),
        (40, "<d", -1.0, "m2 -1.0 is negative"),
        (40, "<d", 1e9, "m2 1000000000.0 is larger than"),
        (56, "<d", -1.0, "m4 -1.0 is negative"),
        (56, "<d", 0.0, r"m4 0.0 is below m2\*\*2 / n"),
        (8, "<I", 1000, "below_min 1000 is more than its"),
        (16, "<I", 1000, "max_run 1000 is longer than the report's 100 rows"),
        (24, "<f", float("-inf"), "min -inf / max .* is not finite"),
        (28, "<f", -5.0, "min .* is above max -5.0"),
    ],
)
def test_implausible_moments_are_refused_with_the_field_named(
    report_bytes, sketch, offset, fmt, value, message
):
    decode_report(report_bytes, sketch["layout"])  # the real report is plausible
    with pytest.raises(DataError, match=message):
        decode_report(_set(report_bytes, offset, fmt, value), sketch["layout"])


def test_the_header_is_readable_without_the_layout(report_bytes):
    header = read_header(report_bytes)
    assert (header.device, header.target, header.version, header.n_rows) == ("d1", TARGET, 7, 100)
    assert HEADER.size == 96


def test_another_models_layout_is_refused(report_bytes, sketch):
    other = TelemetryLayout.build(
        sketch["reference"], list(reversed(FEATURES)), version=7, classes=("0", "1")
    )
    with pytest.raises(DataError, match="another model"):
        decode_report(report_bytes, other)


def test_layouts_refuse_non_numeric_features_and_round_trip():
    frame = pd.DataFrame({"x": np.arange(40.0), "c": ["a", "b"] * 20})
    schema = Schema(
        (ColumnSpec("x", "numeric", True, 0.0, 50.0), ColumnSpec("c", "categorical", True))
    )
    reference = BatchProfile.from_frame(frame, schema, bins=4)
    with pytest.raises(DataError, match="'c' is categorical"):
        TelemetryLayout.build(reference, ["x", "c"], version=1)
    layout = TelemetryLayout.build(reference, ["x"], version=1, schema=schema)
    assert layout.features[0].min == 0.0 and layout.features[0].max == 50.0
    assert TelemetryLayout.from_dict(layout.to_dict()) == layout
    assert layout.fingerprint != TelemetryLayout.build(reference, ["x"], version=1).fingerprint


def test_a_regressor_sketch_profiles_its_predictions(elec, tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    train = elec.iloc[20_000:21_344]
    schema = Schema.infer(train[FEATURES])
    reference = BatchProfile.from_frame(train[FEATURES], schema)
    model = DecisionTreeRegressor(max_depth=4).fit(train[FEATURES], train.nswdemand)
    export = export_c(model, feature_names=FEATURES)
    layout = TelemetryLayout.build(reference, FEATURES, version=2, schema=schema)
    files = {**export.files, **sketch_files(layout, target="m0")}
    binary = build_sketch(tmp_path, files)
    rows = elec.iloc[25_000:25_200][FEATURES]
    report = decode_report(run_sketch(binary, rows), layout)
    predicted = model.predict(rows).astype(np.float32).astype(np.float64)
    assert report.predictions.kind == "numeric" and report.predictions.count == 200
    assert report.predictions.mean == pytest.approx(predicted.mean(), rel=1e-6)
    assert report.predictions.max == predicted.max()
