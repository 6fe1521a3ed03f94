"""The report's performance plot keeps its legend off the lines (issue 15: it covered them) and
breaks its lines at quarantined or missing batches."""

import numpy as np
import pandas as pd

from retrainer.report import performance_figure


def frame(n=80):
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    rows = []
    for role, level in (("champion", 0.85), ("baseline", 0.55)):
        values = np.clip(level + rng.normal(0, 0.12, n), 0.0, 1.0)  # crosses the whole height
        rows += [
            {
                "batch": i + 1,
                "version": 1,
                "role": role,
                "metric": "accuracy",
                "value": v,
                "n": 48,
                "data_time": t,
            }
            for i, (v, t) in enumerate(zip(values, times, strict=True))
        ]
    promos = pd.DataFrame(
        {
            "run": [1, 2],
            "version": [2, 3],
            "status": ["succeeded", "rejected"],
            "promoted": [True, False],
            "clock": [times[20], times[50]],
        }
    )
    return pd.DataFrame(rows), promos


def test_the_legend_covers_no_line():
    perf, promos = frame()
    fig = performance_figure(perf, promos, "accuracy")
    fig.canvas.draw()
    legends = [*fig.legends, *(a.get_legend() for a in fig.axes if a.get_legend())]
    assert len(legends) == 1
    box = legends[0].get_window_extent()
    ax = fig.axes[0]
    assert not box.overlaps(ax.get_window_extent())  # outside the plotting area altogether
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert any("continuously trained" in t for t in labels)
    assert any("rejected by the gate" in t for t in labels)
    for line in ax.get_lines():
        points = line.get_transform().transform(line.get_xydata())
        inside = (
            (points[:, 0] >= box.x0)
            & (points[:, 0] <= box.x1)
            & (points[:, 1] >= box.y0)
            & (points[:, 1] <= box.y1)
        )
        assert not inside.any(), line.get_label()
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.width  # and on the image


def test_the_lines_break_at_gaps():
    perf, promos = frame()
    times = sorted(perf["data_time"].unique())
    gaps = [(times[10] + (times[11] - times[10]) / 2).isoformat(), times[40].isoformat()]
    fig = performance_figure(perf, promos, "accuracy", gaps)
    for line in fig.axes[0].get_lines():
        if line.get_label().startswith(("continuously", "never")):
            y = np.asarray(line.get_ydata(), dtype=float)
            assert np.isnan(y).sum() == len(gaps)
            assert len(y) == len(times) + len(gaps)
