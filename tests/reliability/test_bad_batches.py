"""B1: generated bad batches and late labels either work or raise a RetrainerError naming where.

Hypothesis mutates real ELEC2 rows (random dtypes, NaN and inf, empty and one-row frames,
duplicated, unicode and extra column names, huge strings, timestamps naive or out of order,
wrong label types, late labels for unknown ids) and sends them through ``Project.ingest``,
``ingest_labels`` and a cycle. Nothing but a RetrainerError may escape; its message names the
batch (``fuzz-N``) and the store stays sound (integrity check ok, ``doctor`` finds no missing or
corrupt artifact). Project files get the same treatment: malformed YAML, wrong types and unknown
keys give a ConfigError whose problems carry the key path.
"""

import itertools

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from retrainer.config import Config
from retrainer.doctor import doctor
from retrainer.errors import ConfigError, RetrainerError

WEEK = 48 * 7
_counter = itertools.count()

odd_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=20),
    st.just("x" * 100_000),
    st.booleans(),
    st.none(),
    st.just(b"\xff\xfe bytes"),
)
names = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["id", "target", "nswprice"]))


@st.composite
def bad_batches(draw, base: pd.DataFrame) -> pd.DataFrame:
    n = draw(st.sampled_from([0, 1, 2, 30]))
    frame = base.iloc[: max(n, 1)].copy().iloc[:n]
    for _ in range(draw(st.integers(1, 3))):
        if frame.columns.duplicated().any():
            break
        kind = draw(
            st.sampled_from(
                ["column", "drop", "extra", "duplicate", "nonfinite", "time", "target", "id"]
            )
        )
        columns = list(frame.columns)
        if kind == "column" and len(frame):
            col = draw(st.sampled_from(columns))
            values = draw(st.lists(odd_values, min_size=len(frame), max_size=len(frame)))
            frame[col] = pd.Series(values, index=frame.index, dtype=object)
        elif kind == "drop":
            frame = frame.drop(columns=[draw(st.sampled_from(columns))])
        elif kind == "extra":
            frame[draw(names)] = draw(odd_values)
        elif kind == "duplicate":
            col = draw(st.sampled_from(columns))
            frame = pd.concat([frame, frame[[col]]], axis=1)
        elif kind == "nonfinite" and len(frame):
            col = draw(st.sampled_from(["nswprice", "nswdemand", "vicprice"]))
            if col in frame:
                frame[col] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        elif kind == "time" and "timestamp" in frame and len(frame):
            is_time = pd.api.types.is_datetime64_any_dtype(frame["timestamp"])
            choice = draw(st.sampled_from(["naive", "reversed", "strings", "missing"]))
            if choice == "naive" and is_time:
                frame["timestamp"] = frame["timestamp"].dt.tz_localize(None)
            elif choice == "reversed":
                frame = frame.iloc[::-1]
            elif choice == "strings":
                frame["timestamp"] = draw(st.text(max_size=10))
            else:
                frame["timestamp"] = pd.NaT
        elif kind == "target" and "target" in frame:
            frame["target"] = draw(odd_values)
        elif kind == "id" and "id" in frame:
            frame["id"] = draw(st.sampled_from([None, 0, "id", 1e300]))
    return frame


@pytest.fixture(scope="module")
def project(tmp_path_factory, elec):
    from retrainer.project import Project
    from tests.conftest import project_settings, store_url

    root = tmp_path_factory.mktemp("fuzz")
    settings_ = project_settings()
    settings_["store"]["url"] = store_url(root)
    project = Project.from_dict(settings_, root=root)
    project.ingest(elec.iloc[: 2 * WEEK], key="history")
    project.cycle()
    yield project
    if project.store.engine.dialect.name == "sqlite":
        with project.store.session() as s:
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    report = doctor(project)
    bad = [f for f in report.problems if f.kind in ("missing_artifact", "corrupt_artifact")]
    assert not bad, report.to_dict()
    project.store.dispose()


def refused_naming_the_batch(call, where: str) -> bool:
    """Run ``call``; True if it worked, False if it raised a RetrainerError naming ``where``."""
    try:
        call()
    except RetrainerError as exc:
        assert where in str(exc), f"the error does not name {where}: {exc}"
        return False
    return True


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_bad_batches_work_or_raise_a_named_error(project, elec, data):
    frame = data.draw(bad_batches(elec.iloc[2 * WEEK : 3 * WEEK]))
    where = f"fuzz-{next(_counter)}"
    refused_naming_the_batch(lambda: project.ingest(frame, key=where, source=where), where)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=20),
    labels=st.lists(odd_values, max_size=20),
)
def test_late_labels_of_any_kind_work_or_raise_a_named_error(project, ids, labels):
    n = min(len(ids), len(labels))
    frame = pd.DataFrame({"id": pd.Series(ids[:n], dtype=object), "target": labels[:n]})
    where = f"fuzz-labels-{next(_counter)}"
    refused_naming_the_batch(lambda: project.ingest_labels(frame, key=where, source=where), where)


def test_a_cycle_after_the_fuzz_completes(project, elec):
    project.ingest(elec.iloc[3 * WEEK : 4 * WEEK], key="clean-after-fuzz")
    assert project.cycle().cycle_id > 0


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
VALID = {
    "data": {"target": "y", "id_column": "id"},
    "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier", "window": {"batches": 2}},
    "policy": {"triggers": [{"type": "schedule", "every": "7d"}], "cooldown": "1d"},
    "gate": {"metric": "accuracy", "tolerance": 0.01},
}
PATHS = [
    ("data", "target"),
    ("trainer", "estimator"),
    ("trainer", "window", "batches"),
    ("policy", "cooldown"),
    ("gate", "metric"),
    ("gate", "tolerance"),
]


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(PATHS), value=yaml_values)
def test_a_wrong_value_is_named_by_its_key_path(path, value):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        Config.from_dict(data)
    except ConfigError as exc:
        assert exc.problems and any(".".join(path) in p for p in exc.problems), exc.problems


@settings(max_examples=100, deadline=None)
@given(section=st.sampled_from(["data", "trainer", "gate", "policy"]), key=st.text(min_size=1))
def test_an_unknown_key_is_named(section, key):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    fields = type(getattr(Config.from_dict(VALID), section)).model_fields
    if key in data[section] or key in fields or key in {f.alias for f in fields.values()}:
        return  # a real key of the section (Hypothesis found `policy.cost`)
    data[section][key] = 1
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(data)
    assert any(p.startswith(f"{section}.{key}: unknown key") for p in caught.value.problems)


@settings(max_examples=60, deadline=None)
@given(document=st.one_of(st.text(max_size=200), yaml_values.map(yaml.safe_dump)))
def test_any_file_gives_a_config_or_a_config_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("cfg") / "retrainer.yaml"
    path.write_text(document, encoding="utf-8")
    try:
        Config.from_yaml(path)
    except ConfigError as exc:
        assert exc.problems and str(path) in str(exc)
