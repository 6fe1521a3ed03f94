"""The scenario suite on real streams: each cause injected at a known batch ranks first, fast;
no-change runs stay quiet. The full suite (and its bench table) is slow-marked."""

import pytest

from retrainer.diagnosis.scenarios import SCENARIOS, confusion, run_scenario, run_suite

ONE_PER_CAUSE = [
    "elec2-scale",
    "employment-swap",
    "hapt-stuck",
    "elec2-duplicates",
    "elec2-flip",
    "elec2-shift",
]


@pytest.mark.parametrize("name", ONE_PER_CAUSE)
def test_the_injected_cause_ranks_first(name):
    scenario = SCENARIOS[name]
    result = run_scenario(None, scenario, steps=4, at=2)
    assert result.false_alarms == 0
    assert result.diagnosed == scenario.cause, result.tops
    assert result.delay == (1 if scenario.cause == "changed_relation" else 0)


def test_a_no_change_stream_raises_nothing():
    result = run_scenario(None, SCENARIOS["elec2-none"], steps=30)
    assert result.false_alarms == 0 and set(result.tops) == {None}


def test_the_confusion_matrix_counts_true_against_diagnosed():
    results = [
        run_scenario(None, SCENARIOS[n], steps=3, at=1) for n in ("elec2-rename", "elec2-inf")
    ]
    table = confusion(results)
    assert table.loc["upstream_change", "upstream_change"] == 1
    assert table.loc["data_quality", "data_quality"] == 1
    assert int(table.to_numpy().sum()) == 2


@pytest.mark.slow
def test_the_full_suite_meets_the_bar():
    results = run_suite(quiet_steps=100)
    injected = [r for r in results if r.cause is not None]
    quiet = [r for r in results if r.cause is None]
    assert sum(r.right for r in injected) >= 0.9 * len(injected)
    assert sum(r.false_alarms for r in quiet) <= sum(r.steps for r in quiet) / 100
