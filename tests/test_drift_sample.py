"""Reference samples of versions, and prediction, target and multivariate drift in the cycle."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sqlalchemy import select

from retrainer.artifacts import ArtifactStore
from retrainer.checks.multivariate import mmd_unbiased
from retrainer.checks.sample import (
    ReferenceSample,
    multivariate_drift,
    prediction_drift,
    store_sample,
    target_drift,
)
from retrainer.replay import replay
from retrainer.store.tables import BatchRow, CheckRow, EventRow


def _rows(n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] + x[:, 1] > 0).astype(int)})


@pytest.fixture()
def fitted(tmp_path):
    rows = _rows(2000)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(rows[["a", "b"]], rows.y)
    store = ArtifactStore(tmp_path)
    entry = store_sample(store, model, rows, ["a", "b"], "y", task="classification", max_rows=600)
    return store, model, rows, entry


def test_the_sample_is_bounded_and_keeps_the_models_predictions(fitted):
    store, model, rows, entry = fitted
    sample = ReferenceSample.load(store, entry)
    assert entry["rows"] == len(sample.features) == 600 and entry["predictions"] == "held_out"
    assert list(sample.features.columns) == ["a", "b"]
    np.testing.assert_array_equal(sample.predictions, model.predict(sample.features))
    merged = sample.features.assign(y=sample.labels.to_numpy()).merge(rows, on=["a", "b"])
    assert len(merged) == 600 and (merged.y_x == merged.y_y).all()  # rows of the input, labelled


def test_prediction_drift_equals_the_chi_square_test_of_the_predictions(fitted):
    store, model, _, entry = fitted
    sample = ReferenceSample.load(store, entry)
    for shift, drifted in ((0.0, False), (0.7, True)):
        batch = _rows(800, shift, seed=5)
        verdict = prediction_drift(sample, model, batch)[0]
        assert verdict.column == "prediction" and verdict.detail["output"] == "prediction"
        ref = np.bincount(sample.predictions.to_numpy(), minlength=2)
        cur = np.bincount(model.predict(batch[["a", "b"]]), minlength=2)
        expected = stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue
        assert verdict.name == "z" and verdict.p_value == pytest.approx(expected, rel=1e-9)
        assert verdict.alarm is drifted


def test_regression_predictions_and_labels_are_tested_as_numbers(tmp_path):
    rows = _rows(1500).assign(y=lambda d: d.a * 2.0 + d.b)
    model = DecisionTreeRegressor(max_depth=4, random_state=0).fit(rows[["a", "b"]], rows.y)
    store = ArtifactStore(tmp_path)
    entry = store_sample(store, model, rows, ["a", "b"], "y", task="regression", max_rows=400)
    sample = ReferenceSample.load(store, entry)
    batch = _rows(400, 0.5, seed=3).assign(y=lambda d: d.a * 2.0 + d.b)
    pred = prediction_drift(sample, model, batch)[0]
    target = target_drift(sample, batch.y)[0]
    exact = stats.ks_2samp(sample.labels, batch.y, method="exact")
    assert target.name == "ks" and target.statistic == pytest.approx(exact.statistic)
    assert target.p_value == pytest.approx(exact.pvalue, rel=1e-6) and target.alarm
    assert pred.name == "ks" and pred.alarm


def test_target_drift_drops_missing_labels_and_says_when_too_few(fitted):
    store, _, _, entry = fitted
    sample = ReferenceSample.load(store, entry)
    labels = pd.Series([1.0, np.nan] * 10)
    few = target_drift(sample, labels)[0]
    assert few.status == "insufficient" and not few.alarm and few.detail["output"] == "target"
    flipped = target_drift(sample, pd.Series([1] * 400 + [0] * 100))[0]
    table = np.vstack([np.bincount(sample.labels, minlength=2), [100, 400]])
    assert flipped.p_value == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9
    )


def test_a_batch_without_the_models_columns_is_a_schema_error_not_a_crash(fitted):
    store, model, _, entry = fitted
    sample = ReferenceSample.load(store, entry)
    batch = _rows(300).rename(columns={"a": "a2"})
    (result,) = prediction_drift(sample, model, batch)
    assert result.status == "schema_error" and "['a']" in result.message
    mv = multivariate_drift(sample, batch, method="pca_reconstruction")
    assert mv.status == "ok"  # the missing column reads as missing: far from the reference


def _correlated(n, seed, correlated=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    other = x if correlated else rng.normal(size=n)
    return pd.DataFrame({"a": x, "b": other + 0.1 * rng.normal(size=n)})


@pytest.mark.parametrize("method", ["mmd", "pca_reconstruction", "domain_classifier"])
def test_the_multivariate_check_reads_a_bounded_sample_and_sees_a_broken_correlation(method):
    labels = pd.Series(np.zeros(2000, dtype=int))
    sample = ReferenceSample(_correlated(2000, 1), labels, labels, "classification")
    calm = multivariate_drift(sample, _correlated(3000, 2), method=method, max_rows=300)
    moved = multivariate_drift(sample, _correlated(3000, 3, False), method=method, max_rows=300)
    assert calm.name == method and calm.detail["rows"] == [300, 300]
    assert not calm.alarm and moved.alarm
    with pytest.raises(ValueError, match="not one of"):
        multivariate_drift(sample, _correlated(100, 4), method="magic")


def test_mmd_counts_rows_as_the_references_weeks_differ(elec):
    """ELEC2 weeks against the week before them (the reference sample is the champion's holdout,
    its newest rows): MMD alarmed on every unchanged week (19 of 19), since neighbouring weeks
    differ by their market events. With the design effect of the 4 weeks before (the
    reference's batches, as the column tests count rows) it alarms on 8, and a week whose
    demand was sent scaled (a unit change) or whose two prices were swapped still alarms."""
    from retrainer.checks.reference import dispersion
    from retrainer.data.schema import Schema
    from retrainer.profile import BatchProfile

    columns = ["nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
    weeks = [elec[columns].iloc[i * 336 : (i + 1) * 336] for i in range(60, 84)]
    labels = pd.Series(np.zeros(336, dtype=int))
    schema = Schema.infer(elec[columns])
    raw, counted, broken = 0, 0, 0
    for k in range(5, len(weeks)):
        first = BatchProfile.from_frame(pd.concat(weeks[k - 5 : k - 1]), schema)
        profiles = [
            BatchProfile.from_frame(w, schema, edges=first.edges()) for w in weeks[k - 5 : k - 1]
        ]
        effects = dispersion(profiles)
        sample = ReferenceSample(weeks[k - 1], labels, labels, "classification")
        raw += multivariate_drift(sample, weeks[k]).alarm
        counted += multivariate_drift(sample, weeks[k], dispersion=effects).alarm
        swapped = weeks[k].rename(columns={"nswprice": "vicprice", "vicprice": "nswprice"})
        scaled = weeks[k].assign(nswdemand=weeks[k]["nswdemand"] * 10)
        broken += sum(
            multivariate_drift(sample, w, dispersion=effects).alarm for w in (swapped, scaled)
        )
    assert raw >= 15 and counted <= raw // 2 and broken == 2 * (len(weeks) - 5), (
        raw,
        counted,
        broken,
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, elec):
    from retrainer.project import Project
    from tests.conftest import project_settings

    root = tmp_path_factory.mktemp("sample")
    settings = project_settings()
    settings["checks"] = {"sample": {"rows": 300, "multivariate_rows": 200}}
    project = Project.from_dict(settings, root=root)
    replay(project, elec.iloc[: 48 * 7 * 12])
    return project


def test_the_cycle_stores_prediction_target_and_multivariate_drift(replayed, elec):
    project = replayed
    champion = project.champion
    entry = champion.metrics["reference_sample"]
    holdout = champion.lineage["window"]["holdout_rows"]
    assert entry["rows"] == min(300, holdout) and entry["predictions"] == "held_out"
    sample = ReferenceSample.load(project.artifacts, entry)
    model = project.load_model(champion.version)
    # the gate copy's predictions (it was fitted without these rows), not the refit model's
    held_out = np.mean(sample.predictions == sample.labels)
    assert champion.lineage["refit_on_window"] and entry["rows"] == holdout
    assert champion.metrics["holdout"] == pytest.approx(held_out)
    assert held_out < np.mean(model.predict(sample.features) == sample.labels)
    with project.store.session() as s:
        rows = s.scalars(select(CheckRow).where(CheckRow.kind == "drift")).all()
    outputs = {}
    for r in rows:
        if r.detail.get("output") and r.name not in ("psi", "jensen_shannon"):
            outputs.setdefault(r.detail["output"], []).append(r)
    mmd_rows = [r for r in rows if r.name == "mmd"]
    assert len(outputs["prediction"]) >= 5 and len(outputs["target"]) >= 5
    assert len(mmd_rows) == len(outputs["prediction"])
    assert all(r.column == "target" and r.detail["status"] == "ok" for r in outputs["target"])
    assert all(max(r.detail["rows"]) == 200 for r in mmd_rows)
    assert all(r.p_value is not None for r in outputs["prediction"] + outputs["target"])


def test_the_target_drift_of_a_batch_equals_scipy_on_its_labels(replayed):
    project = replayed
    with project.store.session() as s:
        checks = s.scalars(
            select(CheckRow).where(
                CheckRow.kind == "drift",
                CheckRow.column == "target",
                CheckRow.name.not_in(["psi", "jensen_shannon"]),
            )
        ).all()
        batches = {r.batch_id: s.get(BatchRow, r.batch_id) for r in checks}
    versions = [project.registry.get(v) for v in range(1, project.champion.version + 1)]
    samples = {
        v.metrics["reference_sample"]["artifact"]: v.metrics["reference_sample"] for v in versions
    }
    for check in checks[-3:]:
        sample = ReferenceSample.load(project.artifacts, samples[check.detail["sample"]])
        labels = project.batch_frame(batches[check.batch_id])["target"].dropna().astype(int)
        table = np.vstack(
            [np.bincount(sample.labels.astype(int), minlength=2), np.bincount(labels, minlength=2)]
        )
        expected = stats.chi2_contingency(table, correction=False).pvalue
        assert check.name == "z" and check.detail["n_batch"] == len(labels)
        assert check.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_the_diagnosis_does_not_read_the_output_checks(replayed):
    project = replayed
    with project.store.session() as s:
        events = s.scalars(select(EventRow).where(EventRow.kind == "check")).all()
    columns = {
        a.get("column") for e in events for a in (e.data.get("diagnosis") or {}).get("alarms", [])
    }
    assert not columns & {"prediction", "target"}


def test_all_permutations_at_once_give_each_permutations_mmd():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 3))
    kernel = np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / 3.0)
    masks = np.stack([rng.permutation(np.arange(60) >= 25) for _ in range(7)], axis=1)
    together = mmd_unbiased(kernel, masks)
    one_by_one = [mmd_unbiased(kernel, masks[:, i]) for i in range(7)]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12, atol=1e-15)
