"""Streaming concept-drift detectors: River parity, batch = one-by-one, persistence, NaN safety."""

import itertools
import json

import numpy as np
import pytest
from river import drift as river_drift
from river import naive_bayes
from river.datasets import synth

from retrainer.checks.concept import (
    ADWIN,
    CUSUM,
    DDM,
    DETECTORS,
    EDDM,
    HDDMA,
    HDDMW,
    KSWIN,
    PageHinkley,
    detector_from_state,
)
from retrainer.checks.concept.adwin import NumbaWindow, adwin_class
from retrainer.checks.concept.base import DriftDetector
from retrainer.checks.concept.native import COMPILED
from retrainer.errors import DataError


def interpreted(cls):
    """``cls`` with its Python ``update`` and batch scan (what runs without the C extension)."""
    return type(cls.__name__, (cls,), {"update": DriftDetector.update, "_native_scan": None})


# the detectors as a machine without a C compiler runs them: same change points and state
NumbaADWIN = adwin_class(NumbaWindow)
PlainDDM, PlainEDDM, PlainPageHinkley = (interpreted(c) for c in (DDM, EDDM, PageHinkley))
FALLBACKS = {NumbaADWIN: ADWIN, PlainDDM: DDM, PlainEDDM: EDDM, PlainPageHinkley: PageHinkley}

# (ours, River's, parameters); every pair must give the same change points
BINARY = [
    (DDM, river_drift.binary.DDM, {}),
    (DDM, river_drift.binary.DDM, {"warm_start": 100, "warning_threshold": 1.5}),
    (EDDM, river_drift.binary.EDDM, {}),
    (EDDM, river_drift.binary.EDDM, {"alpha": 0.8, "beta": 0.75}),
    (PlainDDM, river_drift.binary.DDM, {"warm_start": 100, "warning_threshold": 1.5}),
    (PlainEDDM, river_drift.binary.EDDM, {"alpha": 0.8, "beta": 0.75}),
    (HDDMA, river_drift.binary.HDDMA, {}),
    (HDDMA, river_drift.binary.HDDMA, {"two_sided_test": True, "drift_confidence": 0.01}),
    (HDDMW, river_drift.binary.HDDMW, {}),
    (HDDMW, river_drift.binary.HDDMW, {"two_sided_test": True, "lambda_val": 0.1}),
]
NUMERIC = [
    (ADWIN, river_drift.ADWIN, {}),
    (ADWIN, river_drift.ADWIN, {"delta": 0.05, "clock": 7, "max_buckets": 2}),
    (NumbaADWIN, river_drift.ADWIN, {}),
    (NumbaADWIN, river_drift.ADWIN, {"delta": 0.05, "clock": 7, "max_buckets": 2}),
    (PageHinkley, river_drift.PageHinkley, {}),
    (PageHinkley, river_drift.PageHinkley, {"threshold": 10.0, "mode": "down"}),
    (PlainPageHinkley, river_drift.PageHinkley, {"threshold": 10.0, "mode": "down"}),
    (KSWIN, river_drift.KSWIN, {"seed": 3}),
    (KSWIN, river_drift.KSWIN, {"seed": 5, "alpha": 0.05, "window_size": 50, "stat_size": 10}),
]
ALL = [(ours, params) for ours, _, params in BINARY + NUMERIC] + [
    (CUSUM, {}),
    (CUSUM, {"target": 0.1, "sigma": 0.3, "threshold": 4.0}),
]


def label(case):
    prefix = "interpreted-" if case[0] in FALLBACKS else ""
    return f"{prefix}{case[0].__name__}-{case[-1]}"


def river_run(detector, xs):
    """Change points and warning flags of a River detector fed one value at a time."""
    hits, warnings = [], []
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
        warnings.append(getattr(detector, "warning_detected", False))
    return hits, warnings


def one_by_one(detector, xs):
    hits, warnings = [], []
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
        warnings.append(getattr(detector, "warning_detected", False))
    return hits, warnings


def bernoulli(seed, n=3000):
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(n) < 0.1, rng.random(n) < 0.4].astype(float)


def model_errors(first, second, n=3000):
    """0/1 error stream of an online Gaussian naive Bayes on two generators chained at ``n``."""
    model = naive_bayes.GaussianNB()
    errors = []
    for x, y in itertools.chain(first.take(n), second.take(n)):
        errors.append(float(model.predict_one(x) != y))
        model.learn_one(x, y)
    return np.array(errors)


@pytest.fixture(scope="module")
def error_streams():
    sea = model_errors(synth.SEA(variant=0, seed=1), synth.SEA(variant=3, seed=2))
    agrawal = model_errors(
        synth.Agrawal(classification_function=0, seed=1),
        synth.Agrawal(classification_function=4, seed=2),
    )
    return {"sea": sea, "agrawal": agrawal}


def streams(seed):
    rng = np.random.default_rng(seed)
    return [
        bernoulli(seed),
        np.r_[rng.normal(0, 1, 2000), rng.normal(0.7, 1, 2000), rng.normal(-1, 2, 1000)],
    ]


@pytest.mark.parametrize("case", BINARY, ids=label)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_detectors_match_river_on_bernoulli_jump(case, seed):
    ours, theirs, params = case
    xs = bernoulli(seed)
    expected = river_run(theirs(**params), xs)
    assert one_by_one(ours(**params), xs) == expected
    assert ours(**params).update_many(xs).tolist() == expected[0]


@pytest.mark.parametrize("case", BINARY + NUMERIC, ids=label)
@pytest.mark.parametrize("name", ["sea", "agrawal"])
def test_detectors_match_river_on_model_error_streams(case, name, error_streams):
    ours, theirs, params = case
    xs = error_streams[name][2000:4000] if ours is KSWIN else error_streams[name]
    expected, _ = river_run(theirs(**params), xs)
    assert ours(**params).update_many(xs).tolist() == expected


@pytest.mark.parametrize("case", NUMERIC, ids=label)
@pytest.mark.parametrize("seed", [0, 1])
def test_numeric_detectors_match_river_on_gaussian_shifts(case, seed):
    ours, theirs, params = case
    xs = streams(seed)[1][1200:2800] if ours is KSWIN else streams(seed)[1]  # River's KSWIN is slow
    expected, _ = river_run(theirs(**params), xs)
    assert expected, "the stream must make River detect something"
    assert one_by_one(ours(**params), xs)[0] == expected
    assert ours(**params).update_many(xs).tolist() == expected


def test_kswin_p_value_matches_river():
    xs = streams(4)[1][:700]
    ours, theirs = KSWIN(seed=9), river_drift.KSWIN(seed=9)
    for x in xs:
        ours.update(x)
        theirs.update(x)
        assert ours.p_value == theirs.p_value


def reference_cusum(xs, allowance=0.5, threshold=5.0, warm_start=30, target=None, sigma=None):
    """Page's two-sided recursion, written plainly; re-estimates after each alarm."""
    hits, i = [], 0
    while i < len(xs):
        mean, scale = target, sigma
        if target is None:
            warm = []
            while i < len(xs) and not (len(warm) >= warm_start and np.std(warm, ddof=1) > 0):
                warm.append(xs[i])
                i += 1
            if not (len(warm) >= warm_start and np.std(warm, ddof=1) > 0):
                break
            mean, scale = np.mean(warm), np.std(warm, ddof=1)
        up = down = 0.0
        while i < len(xs):
            z = (xs[i] - mean) / scale
            up, down = max(0.0, up + z - allowance), max(0.0, down - z - allowance)
            i += 1
            if up > threshold or down > threshold:
                hits.append(i - 1)
                break
    return hits


@pytest.mark.parametrize("params", [{}, {"allowance": 1.0, "threshold": 3.0, "warm_start": 50}])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cusum_matches_reference_loop(params, seed):
    for xs in streams(seed):
        expected = reference_cusum(list(xs), **params)
        assert expected
        assert CUSUM(**params).update_many(xs).tolist() == expected
        assert one_by_one(CUSUM(**params), xs)[0] == expected
    shifted = np.r_[np.random.default_rng(seed).normal(0, 1, 500), np.full(50, 2.0)]
    fixed = {"target": 0.0, "sigma": 1.0}
    assert CUSUM(**fixed).update_many(shifted).tolist() == reference_cusum(shifted, **fixed)


@pytest.mark.parametrize("case", ALL, ids=label)
@pytest.mark.parametrize("seed", [0, 1])
def test_update_many_equals_update_in_a_loop(case, seed):
    detector, params = case
    for xs in streams(seed)[: 1 if detector._binary else 2]:
        single, batched, pieces = detector(**params), detector(**params), detector(**params)
        hits, _ = one_by_one(single, xs)
        assert batched.update_many(xs).tolist() == hits
        cuts = np.sort(np.random.default_rng(seed).choice(xs.size, 12, replace=False))
        found = []
        for start, stop in itertools.pairwise(np.r_[0, cuts, xs.size]):
            found += (start + pieces.update_many(xs[start:stop])).tolist()
        assert found == hits
        assert batched.state_dict() == single.state_dict() == pieces.state_dict()
        assert batched.drift_detected == single.drift_detected
        if hasattr(single, "warning_detected"):
            assert batched.warning_detected == single.warning_detected


@pytest.mark.parametrize("case", ALL, ids=label)
def test_state_round_trip_through_json_continues_identically(case):
    detector, params = case
    xs = streams(7)[0 if detector._binary else 1]
    whole = detector(**params)
    expected = whole.update_many(xs).tolist()
    for split in (1500, 3000, 3003, 4500):
        first = detector(**params)
        head = first.update_many(xs[:split]).tolist()
        saved = json.loads(json.dumps(first.state_dict(), allow_nan=False))
        again = detector_from_state(saved)
        assert type(again).__name__ == detector.__name__  # NumbaADWIN's state loads in ADWIN
        tail = (split + again.update_many(xs[split:])).tolist()
        assert head + tail == expected
        assert again.state_dict() == whole.state_dict()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("detector", [PageHinkley, ADWIN, NumbaADWIN, lambda: KSWIN(seed=1), CUSUM])
def test_a_non_finite_value_does_not_blind_numeric_detectors(detector, bad):
    rng = np.random.default_rng(11)
    before, after = rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)
    clean = detector().update_many(np.r_[before, after])
    dirty = detector()
    hits = dirty.update_many(np.r_[before, bad, after])
    assert hits.tolist() == [i if i < 1000 else i + 1 for i in clean.tolist()]
    assert any(1001 <= i <= 1100 for i in hits)
    assert dirty.n_nonfinite == 1 and dirty.n_seen == 2001
    looped = detector()
    for x in np.r_[before, bad, after]:
        looped.update(x)
    assert looped.state_dict() == dirty.state_dict()


@pytest.mark.parametrize("detector", [DDM, EDDM, HDDMA, HDDMW])
def test_a_non_finite_value_does_not_blind_binary_detectors(detector):
    xs = bernoulli(3)
    clean = detector().update_many(xs)
    dirty = detector()
    hits = dirty.update_many(np.r_[xs[:2000], np.nan, xs[2000:4000], np.inf, xs[4000:]])
    shift = lambda i: i + (i >= 2000) + (i >= 4000)  # noqa: E731
    assert hits.tolist() == [shift(i) for i in clean.tolist()]
    assert any(3001 <= i <= 3400 for i in hits)
    assert dirty.n_nonfinite == 2


def test_binary_detectors_refuse_values_other_than_0_and_1():
    ddm = DDM()
    ddm.update_many([0, 1, 0])
    with pytest.raises(DataError, match="0.5 at position 5"):
        ddm.update_many([0, 1, 0.5])
    assert ddm.n_seen == 3
    with pytest.raises(DataError, match="position 3"):
        ddm.update(2)


def test_loading_a_state_into_the_wrong_detector_fails_clearly():
    state = DDM().state_dict()
    with pytest.raises(DataError, match="'DDM' cannot be loaded into EDDM"):
        EDDM.from_state(state)
    with pytest.raises(DataError, match="unknown detector 'Nope'"):
        detector_from_state({**state, "detector": "Nope"})
    del state["state"]["_p_min"]
    with pytest.raises(DataError, match="DDM state is incomplete"):
        DDM.from_state(state)
    assert set(DETECTORS) == {
        "DDM",
        "EDDM",
        "HDDMA",
        "HDDMW",
        "ADWIN",
        "PageHinkley",
        "KSWIN",
        "CUSUM",
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", BINARY + NUMERIC[:4], ids=label)
def test_long_stream_matches_river(case):
    ours, theirs, params = case
    rng = np.random.default_rng(2024)
    xs = np.r_[rng.random(100_000) < 0.1, rng.random(100_000) < 0.3].astype(float)
    expected, _ = river_run(theirs(**params), xs)
    assert ours(**params).update_many(xs).tolist() == expected


def test_adwin_compiled_kernel_equals_the_interpreted_one():
    from retrainer.checks.concept.adwin import _compiled, _scan

    rng = np.random.default_rng(8)
    xs = np.r_[rng.normal(0, 1, 3000), rng.normal(0.4, 1, 3000)]
    outcomes = []
    for kernel in (_compiled(), _scan):
        positions, prefix, acc = np.zeros(400, np.int64), np.zeros(400), np.zeros(4)
        k = kernel(xs, xs[0], acc, positions, prefix, np.array([0.002, 32, 5, 5, 10]))
        n, total, squares, size = acc.tolist()
        size = int(size)
        outcomes.append((k, n, total, squares, positions[:size].tolist(), prefix[:size].tolist()))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] > 3000  # the shift was found


@pytest.mark.parametrize("adwin", [ADWIN, NumbaADWIN], ids=["default", "numba"])
@pytest.mark.parametrize("params", [{"max_buckets": 2, "clock": 1}, {"max_buckets": 3}, {}])
def test_adwin_matches_river_over_many_drifts_and_resets(params, adwin):
    rng = np.random.default_rng(12)
    rates = rng.choice([0.05, 0.2, 0.4], size=12)
    xs = np.concatenate([rng.random(4000) < rate for rate in rates]).astype(float)
    expected, _ = river_run(river_drift.ADWIN(**params), xs)
    assert len(expected) >= 5
    assert adwin(**params).update_many(xs).tolist() == expected
    assert one_by_one(adwin(**params), xs)[0] == expected


@pytest.mark.parametrize("adwin", [ADWIN, NumbaADWIN], ids=["default", "numba"])
@pytest.mark.parametrize("params", [{}, {"clock": 5, "grace_period": 40}, {"clock": 1}])
def test_adwin_values_kept_between_cut_tests_are_never_lost(params, adwin):
    """ADWIN's ``update`` keeps values until the next cut test: a state taken, a width or mean
    read, or a batch read in between must see them, and the change points stay River's."""
    rng = np.random.default_rng(21)
    xs = np.r_[rng.normal(0, 1, 2500), rng.normal(1.5, 1, 2500), rng.normal(0, 1, 2500)]
    expected, _ = river_run(river_drift.ADWIN(**params), xs)
    detector, found = adwin(**params), []
    for start in range(0, xs.size, 777):
        hits, _ = one_by_one(detector, xs[start : start + 400])
        found += [start + h for h in hits]
        width, mean = detector.width, detector.estimation
        detector = adwin.from_state(json.loads(json.dumps(detector.state_dict())))
        assert (detector.width, detector.estimation) == (width, mean)
        found += (start + 400 + detector.update_many(xs[start + 400 : start + 777])).tolist()
    assert len(expected) >= 2
    assert found == expected


@pytest.mark.skipif(not COMPILED, reason="the C extension was not built (no C compiler)")
@pytest.mark.parametrize("fallback", list(FALLBACKS), ids=lambda c: c.__name__)
def test_compiled_and_interpreted_update_agree_bit_for_bit(fallback):
    """After every value: the same drift and warning flags; at checkpoints the same state."""
    compiled = FALLBACKS[fallback]
    rng = np.random.default_rng(41)
    if compiled._binary:
        xs = np.r_[rng.random(4000) < 0.1, rng.random(3000) < 0.35, rng.random(3000) < 0.05]
    else:
        xs = np.r_[rng.normal(0, 1, 3000), rng.normal(2, 1, 3000), rng.normal(-2, 3, 3000)]
    xs = xs.astype(float)
    xs[[17, 5000]] = np.nan
    a, b = compiled(), fallback()
    assert type(a).update is not type(b).update
    assert compiled is ADWIN or a._native_scan is not None  # batches read by the C loop too
    for i, x in enumerate(xs):
        a.update(x)
        b.update(x)
        assert a.drift_detected == b.drift_detected
        assert getattr(a, "warning_detected", 0) == getattr(b, "warning_detected", 0)
        if i % 997 == 0:
            assert a.state_dict() == b.state_dict()
    assert a.n_detections >= 2 and a.state_dict() == b.state_dict()
    assert compiled().update_many(xs).tolist() == fallback().update_many(xs).tolist()


@pytest.mark.skipif(not COMPILED, reason="the C extension was not built (no C compiler)")
def test_adwin_c_window_and_numba_window_leave_the_same_state():
    """The two windows agree bit for bit, so a state saved by one continues in the other."""
    rng = np.random.default_rng(31)
    xs = np.r_[rng.normal(0, 1, 3000), rng.normal(0.3, 2, 3000), rng.normal(-1, 1, 777)]
    # near-constant stretches: a bound almost all linear term, gaps at the rounding level
    flat = np.r_[np.full(900, 1.0), np.full(900, 1.0 + 1e-12), 1.0 + 1e-9 * rng.random(900)]
    for stream in (flat, np.r_[flat, xs]):
        assert one_by_one(ADWIN(clock=1), stream) == one_by_one(NumbaADWIN(clock=1), stream)
    compiled, numba = ADWIN(clock=3), NumbaADWIN(clock=3)
    assert one_by_one(compiled, xs) == one_by_one(numba, xs)
    assert compiled.state_dict() == numba.state_dict()
    moved = NumbaADWIN.from_state(compiled.state_dict())
    assert moved.update_many(xs).tolist() == compiled.update_many(xs).tolist()


@pytest.mark.skipif(not COMPILED, reason="the C extension was not built (no C compiler)")
def test_compiled_update_refuses_what_it_cannot_read():
    for detector in (ADWIN(), DDM(), EDDM(), PageHinkley()):
        with pytest.raises(TypeError, match="real number"):
            detector.update(object())
        assert detector.n_seen == 0
    with pytest.raises(DataError, match="0.5 at position 0"):
        DDM().update(0.5)
    detector = ADWIN()
    for bad in (np.zeros((2, 2)), np.zeros(3, np.float32)):
        for reader in (detector, DDM(), PageHinkley()):
            scan = getattr(reader, "_native_scan", reader._scan)
            with pytest.raises(TypeError, match="one-dimensional float64"):
                scan(bad)
    assert detector.n_seen == 0 and detector.width == 0


@pytest.mark.parametrize(
    ("cls", "name"), [(DDM, "warm_start"), (EDDM, "warm_start"), (PageHinkley, "min_instances")]
)
def test_a_whole_float_count_is_read_as_an_int_and_a_fraction_is_refused(cls, name):
    """A count from a YAML file may arrive as 30.0; the compiled step holds it as an integer."""
    xs = bernoulli(4)
    assert cls(**{name: 40.0}).update_many(xs).tolist() == one_by_one(cls(**{name: 40}), xs)[0]
    with pytest.raises(ValueError, match=f"{name} must be a whole number"):
        cls(**{name: 2.5})


@pytest.mark.parametrize("case", [c for c in ALL if c[0] not in FALLBACKS], ids=label)
def test_a_pickled_or_copied_detector_continues_identically(case):
    """The compiled steps keep their state in C fields: copies go through ``state_dict``."""
    import copy
    import pickle

    detector, params = case
    xs = streams(9)[0 if detector._binary else 1]
    whole = detector(**params)
    expected = whole.update_many(xs).tolist()
    first = detector(**params)
    head = first.update_many(xs[:2500]).tolist()
    for again in (pickle.loads(pickle.dumps(first)), copy.deepcopy(first), copy.copy(first)):
        assert type(again) is detector and again.state_dict() == first.state_dict()
        assert head + (2500 + again.update_many(xs[2500:])).tolist() == expected
