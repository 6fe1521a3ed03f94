"""The project file: examples load, every problem is reported with its key path."""

from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest
import yaml

from retrainer.config import Config, parse_duration
from retrainer.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "examples" / "elec2" / "retrainer.yaml"


def test_the_worked_example_loads_with_its_values():
    cfg = Config.from_yaml(EXAMPLE)
    assert cfg.data.target == "target" and cfg.data.time_column == "timestamp"
    assert cfg.policy.cooldown == timedelta(days=7)
    assert [t.type for t in cfg.policy.triggers][:3] == ["schedule", "drift", "concept"]
    assert cfg.policy.triggers[0].every == timedelta(days=14)
    assert cfg.store_url == f"sqlite:///{EXAMPLE.resolve().parent / 'store.db'}"


def test_the_init_template_is_a_valid_project_file(tmp_path):
    text = resources.files("retrainer").joinpath("templates/retrainer.yaml").read_text()
    path = tmp_path / "retrainer.yaml"
    path.write_text(text)
    cfg = Config.from_yaml(path)
    assert cfg.trainer.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert {t.type for t in cfg.policy.triggers} == {
        "schedule",
        "volume",
        "drift",
        "concept",
        "performance",
        "manual",
    }


def test_every_problem_is_listed_with_its_key_path(tmp_path):
    path = tmp_path / "retrainer.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"targte": "y"},
                "trainer": {"estimator": "sklearn.nope.Model", "window": {"batches": 0}},
                "policy": {
                    "triggers": [{"type": "volume"}, {"type": "schedule", "cron": "99 * *"}],
                    "cooldown": "soon",
                },
                "gate": {"metric": "accurasy"},
            }
        )
    )
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(path)
    problems = info.value.problems
    assert any(p.startswith("data.target: field required") for p in problems)
    assert any(p.startswith("data.targte: unknown key") for p in problems)
    assert any(
        p.startswith("trainer.estimator: cannot import 'sklearn.nope.Model'") for p in problems
    )
    assert any(p.startswith("trainer.window.batches:") for p in problems)
    assert any(
        p.startswith("policy.triggers.0: a volume trigger needs 'min_rows'") for p in problems
    )
    assert any(p.startswith("policy.triggers.1:") and "cron" in p for p in problems)
    assert any(p.startswith("policy.cooldown:") and "duration" in p for p in problems)
    assert any(p.startswith("gate.metric: must be one of") for p in problems)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_malformed_files_get_a_clear_error(tmp_path, text, message):
    path = tmp_path / "retrainer.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Config.from_yaml(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        Config.from_yaml(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("1.5d", timedelta(days=1.5)),
        ("2w", timedelta(weeks=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


REGRESSION = {
    "project": "p",
    "data": {"target": "y"},
    "trainer": {"estimator": "sklearn.linear_model.Ridge", "task": "regression"},
    "checks": {"concept": {"detector": "page_hinkley"}},
}


def test_a_bad_duration_says_what_is_expected():
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("7 days")


def test_a_regressor_s_cost_is_in_its_gate_metric_s_row_errors():
    settings = {**REGRESSION, "policy": {"cost": {"retrain": 500}}}
    assert Config.from_dict(settings).policy.cost.errors == 500  # absolute errors (mae)
    Config.from_dict({**settings, "gate": {"metric": "rmse"}})  # squared errors
    with pytest.raises(ConfigError, match="r2 is not a sum of row errors"):
        Config.from_dict({**settings, "gate": {"metric": "r2"}})


def test_a_regression_project_is_gated_on_a_regression_metric():
    settings = dict(REGRESSION)
    assert Config.from_dict(settings).gate.metric == "mae"  # the default follows the task
    assert Config.from_dict({**settings, "gate": {"metric": "r2"}}).gate.metric == "r2"
    # accuracy on a regressor failed every run later with "continuous is not supported"
    with pytest.raises(ConfigError, match="gate.metric: accuracy does not score a regression"):
        Config.from_dict({**settings, "gate": {"metric": "accuracy"}})
    classifier = {
        "data": {"target": "y"},
        "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
    }
    with pytest.raises(ConfigError, match="use one of accuracy, balanced_accuracy, f1, roc_auc"):
        Config.from_dict({**classifier, "gate": {"metric": "rmse"}})


def test_a_performance_trigger_on_another_metric_than_the_gates_is_refused():
    settings = {
        **REGRESSION,
        "gate": {"metric": "mae"},
    }
    rmse = {"type": "performance", "metric": "rmse", "max_drop": 0.5}
    # it was accepted and ignored: the trigger compared mae with the champion's holdout mae
    with pytest.raises(ConfigError, match=r"policy.triggers\[0\].metric: rmse is not gate.metric"):
        Config.from_dict({**settings, "policy": {"triggers": [rmse]}})
    group = {"type": "group", "triggers": [{"type": "drift"}, rmse]}
    with pytest.raises(ConfigError, match=r"policy.triggers\[1\].triggers\[1\].metric: rmse"):
        Config.from_dict({**settings, "policy": {"triggers": [{"type": "manual"}, group]}})
    same = {**rmse, "metric": "mae"}
    assert Config.from_dict({**settings, "policy": {"triggers": [same]}}).policy.triggers[0].metric
