"""`explain decision` names what a drift verdict was on, also for a check of whole rows."""

from retrainer import cli


def test_a_multivariate_verdict_is_not_shown_as_column_none(capsys):
    decision = {
        "decision": 5,
        "cycle": 5,
        "at": "2013-03-31T07:00:00",
        "words": "Retrain: 1 reason(s).",
        "fired": [],
        "suppressed": [],
        "evidence": {
            "concept": [],
            "performance": [],
            "alarms": [],
            "drifted_columns": [
                {
                    "batch": 15,
                    "column": None,
                    "test": "mmd",
                    "statistic": 0.3956,
                    "p_value": 0.00498,
                    "threshold": 0.05,
                }
            ],
        },
    }
    cli._render_decision(decision)
    out = capsys.readouterr().out
    assert "None" not in out
    assert "batch 15 rows (multivariate): mmd 0.3956" in out
