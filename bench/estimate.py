"""Label-free performance estimates against realised performance on real data.

Run: ``.venv/bin/python bench/estimate.py``. Employment (NannyML's ACS data, Massachusetts):
CBPE calibrated on the 2015 reference, estimated per year 2016-2018. ELEC2: a
HistGradientBoosting model trained on weeks 1-3, calibrated on week 4, estimated on the next
weeks in 4-week blocks (real concept drift: the estimate assumes the relation did not change,
so the error there is what a concept check has to catch). Prints Markdown tables.
"""

from __future__ import annotations

import os

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from retrainer.checks.estimate import CBPE
from retrainer.datasets import load_elec2
from retrainer.metrics import score

DATA = os.environ.get("RETRAINER_SHARED_DATA", "/work/shared/data") + "/"
FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


def row(name: str, metric: str, estimate, realised: float) -> str:
    inside = "yes" if estimate.covers(realised) else "no"
    return (
        f"| {name} | {metric} | {estimate.value:.4f} | {estimate.lower:.4f} .. "
        f"{estimate.upper:.4f} | {realised:.4f} | {estimate.value - realised:+.4f} | {inside} |"
    )


def main() -> None:
    header = "| data | metric | estimated | band | realised | error | in band |\n" + "|---" * 7
    reference = pd.read_parquet(DATA + "employment_MA_reference.pq")
    analysis = pd.read_parquet(DATA + "employment_MA_analysis.pq").merge(
        pd.read_parquet(DATA + "employment_MA_analysis_target.pq"), on="id"
    )
    print("Employment (MA), CBPE calibrated on 2015:\n\n" + header + "|")
    for metric in ("accuracy", "roc_auc", "f1"):
        cbpe = CBPE(metric).fit(reference["employed"], reference["predicted_probability"])
        for year, part in analysis.groupby("year"):
            est = cbpe.estimate(part["predicted_probability"], part["prediction"])
            y, pred = part["employed"], part["prediction"]
            real = score(metric, y, pred, part["predicted_probability"])
            print(row(str(year), metric, est, real))
    elec = load_elec2()
    week = 336
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model.fit(elec[FEATURES][: 3 * week], elec["target"][: 3 * week])
    held = elec.iloc[3 * week : 4 * week]
    cbpe = CBPE("accuracy").fit(
        held["target"] == model.classes_[1], model.predict_proba(held[FEATURES])[:, 1]
    )
    print("\nELEC2, model of weeks 1-3, CBPE calibrated on week 4:\n\n" + header + "|")
    for start in range(4, 24, 4):
        part = elec.iloc[start * week : (start + 4) * week]
        est = cbpe.estimate_model(model, part[FEATURES])
        real = score("accuracy", part["target"], model.predict(part[FEATURES]))
        print(row(f"weeks {start + 1}-{start + 4}", "accuracy", est, real))


if __name__ == "__main__":
    main()
