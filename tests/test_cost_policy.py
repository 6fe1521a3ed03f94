"""Costs in the project file: the cost trigger in the live loop and `backtest --optimal`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from retrainer import views
from retrainer.config import PolicySettings
from retrainer.replay import replay
from retrainer.store.tables import CheckRow, DecisionRow
from retrainer.triggers import CostTrigger, Policy
from tests.conftest import project_settings, store_url


def test_a_cost_makes_the_cost_trigger_the_default_and_money_converts_to_errors():
    policy = Policy.from_settings(PolicySettings.model_validate({"cost": {"retrain": 500}}))
    assert [type(t).__name__ for t in policy.triggers] == ["CostTrigger", "ManualTrigger"]
    money = PolicySettings.model_validate({"cost": {"retrain": 200, "error": 0.5}})
    assert Policy.from_settings(money).triggers[0] == CostTrigger(retrain_cost=400)
    listed = PolicySettings.model_validate(
        {"cost": {"retrain": 5}, "triggers": [{"type": "drift"}]}
    )
    assert [t.type for t in listed.triggers] == ["drift"]
    with pytest.raises(ValueError, match="policy.cost"):
        PolicySettings.model_validate({"triggers": [{"type": "cost"}]})
    with pytest.raises(ValueError):
        PolicySettings.model_validate({"cost": {"retrain": 0}})


def replay_stagger(tmp_path, cost, shadow=None):
    """STAGGER, 200 rows a week, concepts changing abruptly at rows 1100 and 2200 (weeks 5
    and 11; replay steps 1 and 7), under the cost policy (``shadow``: policy.shadow)."""
    from retrainer.datasets.synthetic import drift_stream
    from retrainer.project import Project

    stream = drift_stream("stagger", rows_per_concept=1100, batch_rows=200)
    settings = project_settings(policy={"cost": {"retrain": cost}, "shadow": shadow})
    settings["store"] = {"url": store_url(tmp_path), "artifacts": str(tmp_path / "artifacts")}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    replay(project, stream.frame.iloc[:3000])
    with project.store.session() as s:
        return project, [(d.id, d.action, list(d.reasons)) for d in s.scalars(select(DecisionRow))]


@pytest.mark.parametrize("cost", [50, 10**9])
def test_the_live_cost_policy_retrains_after_a_drift_only_when_it_pays(tmp_path, cost):
    project, rows = replay_stagger(tmp_path, cost, shadow=False)
    priced = [r for r in rows[1:] if r[1] != "alert"]  # after the bootstrap
    assert priced
    for _, _, reasons in priced:
        assert any(r.startswith("cost: ") and "errors against a retrain cost" in r for r in reasons)
    actions = [a for _, a, _ in rows]
    if cost > 10**6:
        assert "retrain" not in actions[1:]
        return
    # labels of the first changed week arrive at step 2 (a week late): the forecast sees the
    # champion making many more errors than fresh models did and retrains at once, at each drift
    retrains = [i for i, a in enumerate(actions) if a == "retrain" and i > 0]
    assert retrains[:1] == [3], actions
    assert any(7 < i <= 10 for i in retrains), actions
    saved = [r for r in rows[3][2] if r.startswith("cost: ")][0]
    assert "retrain now" in saved
    # the record read as a matrix: the served models, and a fresh model's errors (the gate
    # copy's) on the newest labelled batch of each retrain's window
    from retrainer.schedule.live import store_view

    view = store_view(project.store, champion=project.champion.version, horizon=4)
    fresh = np.isfinite(np.diag(view.errors)[: view.t])
    assert fresh.sum() >= len(retrains) + 1
    assert view.champion == view.t - (len(rows) - 1 - retrains[-1])
    words = json.dumps(views.decision_explanation(project, rows[3][0]))
    assert "errors against a retrain cost" in words


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory):
    """The STAGGER replay at cost 50 with shadow candidates (on by default with a cost)."""
    return replay_stagger(tmp_path_factory.mktemp("shadow"), 50)


def _total(project, rows, cost):
    """Errors of the models that served, plus the retrains after the first model, priced."""
    perf = views.performance(project)
    served = perf[perf["role"] == "champion"]
    retrains = sum(a == "retrain" for _, a, _ in rows[1:])
    return float(((1 - served["value"]) * served["n"]).sum()) + cost * retrains


def test_shadow_candidates_keep_the_cost_policy_from_retrains_that_would_not_help(
    shadowed, tmp_path
):
    project, rows = shadowed
    with project.store.session() as s:
        perf = [
            dict(c.detail)
            for c in s.scalars(select(CheckRow).where(CheckRow.kind == "performance"))
        ]
    champion = {p["batch"] for p in perf if p["role"] == "champion"}
    shadows = {p["batch"]: p for p in perf if p["role"] == "shadow"}
    assert set(shadows) == champion  # a shadow candidate on every labelled batch
    assert all(
        p["version"] is None and p["window"]["batches"][0] < p["batch"] for p in shadows.values()
    )
    assert "shadow" not in set(views.performance(project)["role"])  # no version to plot
    # without shadows the record knows a fresh model's errors only at retrains: after the first
    # changed week it retrains at once (step 3) on a window that straddles the change, and the
    # new version does no better than the first model on the next weeks; it retrains again two
    # weeks later, and the same at the second change: 4 retrains
    plain_project, plain = replay_stagger(tmp_path, 50, shadow=False)
    plain_at = [i for i, (_, a, _) in enumerate(plain) if a == "retrain" and i > 0]
    at = [i for i, (_, a, _) in enumerate(rows) if a == "retrain" and i > 0]
    assert plain_at[:1] == [3] and len(plain_at) == 4, plain_at
    # with them it sees that a model fitted now is as wrong as the champion on the changed
    # weeks, holds, and retrains once the fresh model is better: once per change, cheaper
    assert 3 not in at and len(at) == 2, at
    assert _total(project, rows, 50) < _total(plain_project, plain, 50)
    held = [r for r in rows[3][2] if r.startswith("cost: ")][0]
    assert "wait" in held and "shadow candidates on" in held
    assert all("shadow" not in r for _, _, reasons in plain for r in reasons)


def test_the_live_view_with_shadows_is_the_backtests_live_shadow_view(shadowed):
    """The store read as a matrix equals what the backtest's ``LiveInformation(shadow=True)``
    sees on the score matrix of the same batches (the history as one batch, the same trainer,
    window and label delay): the shadow candidates are the matrix's diagonal."""
    import pandas as pd

    from retrainer.data.periods import split_periods
    from retrainer.datasets.synthetic import drift_stream
    from retrainer.schedule.gated import Gate
    from retrainer.schedule.live import store_view
    from retrainer.schedule.policies import GainForecast, LiveInformation, simulate
    from retrainer.schedule.scores import build_scores
    from retrainer.training import Trainer

    project, rows = shadowed
    frame = drift_stream("stagger", rows_per_concept=1100, batch_rows=200).frame.iloc[:3000]
    periods = split_periods(frame, "timestamp", "7D")
    history = pd.concat(periods[:4])
    features = project.features(history)
    batches = [(p[features].reset_index(drop=True), p["target"].to_numpy()) for p in periods[4:]]
    batches.insert(0, (history[features].reset_index(drop=True), history["target"].to_numpy()))
    t = project.config.trainer
    m = build_scores(batches, Trainer(t.estimator, t.params), history=1, window=4)
    live = LiveInformation(GainForecast(), shadow=True)
    run = simulate(m.errors, m.rows, live, cost=50, label_delay=1, gate=Gate(m))
    view = store_view(project.store, champion=project.champion.version, horizon=0)
    n = live.known.shape[0]
    seen = live.known[:, : n - 1]  # the backtest's last boundary: labels up to batch n - 2
    record = view.errors[1 : n + 1, 1:n]  # the store's first column is the history batch
    assert (np.isfinite(seen) == np.isfinite(record)).all()
    assert np.allclose(seen[np.isfinite(seen)], record[np.isfinite(record)])
    # the same decisions, but at the last boundary (the backtest knows the stream ends there)
    at = [i - 1 for i, (_, a, _) in enumerate(rows) if a == "retrain" and i > 0]  # boundaries
    assert [b for b in at if b < n - 1] == list(run.schedule.retrain_at)


def test_cli_backtest_optimal_prices_every_policy_and_reuses_the_matrix(tmp_path):
    config = tmp_path / "retrainer.yaml"
    config.write_text(yaml.safe_dump(project_settings()))
    from retrainer.cli import main

    args = ["-c", str(config), "backtest", "--stream", "stagger", "--optimal", "--cost", "50"]
    args += ["--cost", "5000", "--out", str(tmp_path / "out"), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    got = json.loads(first.output)
    assert got["cached"] is False and len(got["costs"]) == 2
    for part in got["costs"]:
        table = {r["policy"]: r for r in part["table"]}
        best = table["optimal (hindsight)"]["total cost"]
        assert all(r["total cost"] >= best - 1e-9 for r in part["table"])
        assert {"CARA-T", "CARA-CT", "CARA-P", "UPF", "ours (gain forecast)", "DDM trigger"} <= set(
            table
        )
    low, high = (p["table"][0]["retrains"] for p in got["costs"])
    assert low >= high
    assert (tmp_path / "out" / "optimal.html").exists()
    assert (tmp_path / "out" / "optimal-50.png").exists()
    again = CliRunner().invoke(main, args)
    assert json.loads(again.output)["cached"] is True


def test_the_template_holds_a_cost_line_a_new_user_can_turn_on():
    from importlib import resources

    text = resources.files("retrainer").joinpath("templates/retrainer.yaml").read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("# cost:"))
    cost = yaml.safe_load(line.split("#")[1])
    policy = Policy.from_settings(PolicySettings.model_validate(cost))
    assert policy.triggers[0] == CostTrigger(retrain_cost=500)
    assert "errors" in text[text.index(line) : text.index(line) + 600]


def test_a_regressor_s_template_prices_its_cost_in_absolute_error():
    from retrainer.cli import project_template
    from retrainer.config import Config

    text = project_template("regression")
    start = text.index("# cost: {retrain: 500}")
    assert "absolute error in the target's unit" in text[start : start + 200]
    assert "wrong predictions" not in text
    on = yaml.safe_load(text.replace("  # cost: {retrain: 500}", "  cost: {retrain: 500}"))
    assert Config.from_dict(on).policy.cost.errors == 500


def test_a_failed_shadow_fit_is_logged_and_the_cycle_goes_on(tmp_path, monkeypatch):
    from retrainer import cycle
    from retrainer.errors import TrainingError
    from retrainer.store.tables import EventRow

    def broken(project, batch_id):
        raise TrainingError("the trainer broke")

    monkeypatch.setattr(cycle, "fit_shadow", broken)
    project, rows = replay_stagger(tmp_path, 50)
    with project.store.session() as s:
        logged = [e.message for e in s.scalars(select(EventRow).where(EventRow.kind == "shadow"))]
        roles = {c.detail.get("role") for c in s.scalars(select(CheckRow))}
    assert logged and all(
        "no shadow candidate (TrainingError: the trainer broke)" in m for m in logged
    )
    assert "shadow" not in roles and "champion" in roles
    assert len(rows) == 13 and all("shadow candidates" not in r for _, _, x in rows for r in x)


def replay_regressor(tmp_path, cost):
    """A regressor (Ridge on 4 weeks) of a temperature-like target every 2 hours for 20 weeks,
    84 rows a week; from week 10 on the target reads 3 degrees higher for the same inputs."""
    import pandas as pd

    from retrainer.project import Project
    from tests.conftest import REGRESSION

    rng = np.random.default_rng(0)
    n = 20 * 84
    hours = np.arange(n) * 2
    low = 8 + 6 * np.sin(2 * np.pi * hours / 24 / 365) + rng.normal(0, 2, n)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "timestamp": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(hours, "h"),
            "low": low,
            "wind": rng.gamma(2, 2, n),
            "target": low + 7 + rng.normal(0, 1.5, n) + np.where(np.arange(n) >= n // 2, 3, 0),
        }
    )
    trainer = {**REGRESSION["trainer"], "window": {"batches": 4}}
    settings = project_settings(**{**REGRESSION, "trainer": trainer})
    settings["policy"] = {"cost": {"retrain": cost}}
    settings["store"] = {"url": store_url(tmp_path), "artifacts": str(tmp_path / "artifacts")}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    replay(project, frame)
    with project.store.session() as s:
        return project, [(d.action, list(d.reasons)) for d in s.scalars(select(DecisionRow))]


@pytest.mark.parametrize("cost", [30, 10**9])
def test_a_regressor_s_cost_policy_weighs_its_absolute_errors(tmp_path, cost):
    from retrainer.schedule.live import store_view

    project, rows = replay_regressor(tmp_path, cost)
    priced = [r for _, reasons in rows[2:] for r in reasons if r.startswith("cost: ")]
    assert len(priced) == len(rows) - 2
    assert all("absolute error" in r and "errors against" not in r for r in priced), priced[0]
    retrains = [i for i, (a, _) in enumerate(rows) if a == "retrain" and i > 0]
    if cost > 10**6:
        assert retrains == []
        return
    # labels of the first week with the new relation arrive at the tenth decision (a week
    # late): the champion makes ~0.5 more absolute error per row than the shadow candidates,
    # 8 weeks of 84 rows ahead outweigh a retrain at 30; nothing before it paid
    assert retrains[0] == 9 and len(retrains) <= 3, retrains
    assert "retrain now" in rows[9][1][0] and "shadow candidates on" in rows[9][1][0]
    with project.store.session() as s:
        perf = [dict(c.detail) for c in s.scalars(select(CheckRow))]
    shadows = [p for p in perf if p.get("role") == "shadow"]
    assert shadows and all(p["loss"] > 0 and p["errors"] is None for p in shadows)
    view = store_view(project.store, champion=project.champion.version, horizon=4, metric="mae")
    # one row's variance over its mean: for normal noise of sd 1.5 the absolute error's is
    # 1.5 (1 - 2/pi) / sqrt(2/pi) = 0.683 (a little more where the champion was stale)
    assert view.unit == "absolute error" and 0.65 < view.dispersion < 0.8
    assert "absolute error against a retrain cost of 30" in json.dumps(
        views.decision_explanation(project, 10)
    )
