"""Benchmark the TinyML export: parity, Cortex-M4 footprint and host latency per model type.

Run: ``.venv/bin/python bench/tinyml.py`` (needs ``cc``; flash and RAM need ``arm-none-eabi-gcc``).
Data: ELEC2 (train rows 17,424-27,423, after the Victorian fill values; check on the next 10,000)
and HAPT sensor windows (2.56 s, 18 features, activities 1-6, from the first 200,000 samples).

``.venv/bin/python bench/tinyml.py stages`` times each step of one gate check of the demo's model
(HistGradientBoosting, 100 iterations, on a four-week ELEC2 window; 269 held-out rows), as
``retrainer demo`` runs it once per gated challenger.

``.venv/bin/python bench/tinyml.py toolchains`` compares the two Cortex-M4F toolchains on the
same models and rows: GNU (``arm-none-eabi-gcc`` + newlib-nano, run on QEMU) and the pip one
(``retrainer[mcu]``: zig, bare metal, run on unicorn); and unicorn on the GNU image, which
separates the emulator's count from the compiler's code. ``toolchains acs`` runs the same on a
data set held out from the choice of zig's flags (US Census employment, 16 features).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from retrainer.deploy.tinyml import (
    DeployTarget,
    check_parity,
    check_target,
    export_c,
    export_c_emlearn,
    measure_footprint,
    measure_latency,
    quantize_mlp,
    zig,
)
from retrainer.deploy.tinyml import latency as latency_module
from retrainer.deploy.tinyml.elf import read_image
from retrainer.deploy.tinyml.footprint import compile_for_target

TARGET = DeployTarget("cortex-m4f", flash_kb=256, ram_kb=64)
AXES = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
MODELS = {
    "DecisionTree(depth 10)": lambda: DecisionTreeClassifier(max_depth=10, random_state=0),
    "DecisionTree(full)": lambda: DecisionTreeClassifier(random_state=0),
    "RandomForest(20, depth 10)": lambda: RandomForestClassifier(20, max_depth=10, random_state=0),
    "ExtraTrees(20, depth 10)": lambda: ExtraTreesClassifier(20, max_depth=10, random_state=0),
    "HistGradientBoosting(100)": lambda: HistGradientBoostingClassifier(
        max_iter=100, random_state=0
    ),
    "GaussianNB": GaussianNB,
    "Scaler+LogisticRegression": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000)
    ),
    "Scaler+MLP(16,8) relu": lambda: make_pipeline(
        StandardScaler(), MLPClassifier((16, 8), max_iter=300, random_state=0)
    ),
}


def elec2() -> tuple:
    df = pd.read_csv(os.environ.get("RETRAINER_SHARED_DATA", "/work/shared/data") + "/elec2.csv")
    features = [f"feat_{i}" for i in range(1, 7)]
    train, test = df.iloc[17_424:27_424], df.iloc[27_424:37_424]
    return train[features], train["target"], test[features], test["target"]


def hapt() -> tuple:
    df = pd.read_csv(
        os.environ.get("RETRAINER_SHARED_DATA", "/work/shared/data") + "/hapt_accgyro_50hz.csv.gz",
        nrows=200_000,
    )
    signal, label, exp = df[AXES].to_numpy(), df["label"].to_numpy(), df["experiment"].to_numpy()
    rows, labels = [], []
    for start in range(0, len(df) - 128, 64):
        w = slice(start, start + 128)
        if not 1 <= label[start] <= 6 or (label[w] != label[start]).any():
            continue
        if (exp[w] != exp[start]).any():
            continue
        x = signal[w]
        rows.append(np.concatenate([x.mean(0), x.std(0), np.abs(np.diff(x, axis=0)).mean(0)]))
        labels.append(int(label[start]))
    X, y = np.asarray(rows), np.asarray(labels)
    cut = int(0.6 * len(X))
    return X[:cut], y[:cut], X[cut:], y[cut:]


def row(data: str, label: str, model, export, X_test, y_test, float_model=None) -> dict:
    start = time.perf_counter()
    for _ in range(3):
        expected = model.predict(X_test)
    python_us = (time.perf_counter() - start) / (3 * len(X_test)) * 1e6
    parity = check_parity(export, X_test, expected, y=y_test, repeats=20)
    fp = measure_footprint(export, TARGET)
    lat = measure_latency(export, TARGET, X_test, expected)
    reference = model if float_model is None else float_model
    vs_float = np.mean(expected == reference.predict(X_test))
    return {
        "data": data,
        "model": label,
        "agreement": f"{parity.agreement:.4f}",
        "vs float": f"{vs_float:.4f}",
        "C acc": f"{parity.c_accuracy:.4f}",
        "Py acc": f"{parity.python_accuracy:.4f}",
        "flash B": fp.flash_bytes if fp.measured else "n/a",
        "model flash B": fp.model_flash_bytes if fp.measured else "n/a",
        "RAM B": fp.ram_bytes if fp.measured else "n/a",
        "stack B": fp.stack_bytes if fp.measured else "n/a",
        "fits 256K/64K": fp.fits,
        "M4 instr/pred": f"{lat.instructions_per_prediction:.0f}" if lat.measured else "n/a",
        "est. us @64MHz": f"{lat.estimated_ms * 1000:.1f}" if lat.measured else "n/a",
        "board agree": f"{lat.agreement:.4f}" if lat.measured else "n/a",
        "host ns/pred (C)": f"{parity.host_ns_per_prediction:.0f}",
        "sklearn us/pred (batch)": f"{python_us:.2f}",
    }


def main() -> None:
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rows = []
    for data, load in (("elec2", elec2), ("hapt", hapt)):
        X_train, y_train, X_test, y_test = load()
        for label, make in MODELS.items():
            model = make().fit(X_train, y_train)
            rows.append(row(data, label, model, export_c(model), X_test, y_test))
        mlp = make_pipeline(
            StandardScaler(), MLPClassifier((64, 32), max_iter=300, random_state=0)
        ).fit(X_train, y_train)
        rows.append(row(data, "Scaler+MLP(64,32) float", mlp, export_c(mlp), X_test, y_test))
        q = quantize_mlp(mlp, X_train[:2000])
        rows.append(row(data, "Scaler+MLP(64,32) int8", q, export_c(q), X_test, y_test, mlp))
        forest = MODELS["RandomForest(20, depth 10)"]().fit(X_train, y_train)
        emlearn = export_c_emlearn(forest, name="eml")
        rows.append(row(data, "RandomForest, emlearn defaults", forest, emlearn, X_test, y_test))
        emlearn = export_c_emlearn(forest, name="eml", dtype="float")
        rows.append(row(data, "RandomForest, emlearn float", forest, emlearn, X_test, y_test))
    table = pd.DataFrame(rows)
    print(f"target {TARGET.name}: {' '.join(TARGET.compiler_flags())} -Os, newlib-nano")
    print(
        "agreement: C vs the Python model (int8: vs its numpy reference); vs float: Python "
        "predictions vs the float model; latency: QEMU mps2-an386 instruction count x CPI "
        f"{TARGET.cycles_per_instruction} at {TARGET.clock_mhz} MHz"
    )
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))


def stages(repeats: int = 7) -> None:
    """Seconds per step of one target check of the demo's model: first call, then the median."""
    from threadpoolctl import threadpool_limits

    df = pd.read_csv(os.environ.get("RETRAINER_SHARED_DATA", "/work/shared/data") + "/elec2.csv")
    features = [f"feat_{i}" for i in range(1, 7)]
    window = df.iloc[20_000:21_344]
    train, holdout = window.iloc[:-269], window.iloc[-269:]
    X, y = holdout[features], holdout["target"]
    target = DeployTarget("cortex-m4f", 256, 64, max_latency_ms=10, min_agreement=0.99)
    threadpool_limits(1)  # as the demo's trainer (threads: 1)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model.fit(train[features], train["target"])
    times: dict[str, list[float]] = {}

    def timed(step: str, run, *args, **kwargs):
        start = time.perf_counter()
        value = run(*args, **kwargs)
        times.setdefault(step, []).append(time.perf_counter() - start)
        return value

    board = f"board: link + QEMU ({min(len(X), target.board_rows)} rows)"
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            export = timed("export to C", export_c, model)
            expected = timed("Python predict", model.predict, X)
            timed(f"host compile + parity ({len(X)} rows)", check_parity, export, X, expected)
            obj = timed("cross-compile model (once)", compile_for_target, export, target, work)
            timed("footprint: link + size", measure_footprint, export, target, model_object=obj)
            timed(board, measure_latency, export, target, X, expected, model_object=obj)
            report = timed(
                "check_target (all; host beside cross)", check_target, model, target, X, y
            )
    assert report.passed, report.reasons
    table = pd.DataFrame(
        [
            {"step": step, "first s": f"{t[0]:.3f}", "median s": f"{statistics.median(t[1:]):.3f}"}
            for step, t in times.items()
        ]
    )
    print(f"one gate check, {report.model_type}, {target.name}; {repeats} runs, nice'd machine")
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    fp, lat, parity = report.footprint, report.latency, report.parity
    print(
        f"agreement host {parity.agreement:.4f} of {parity.n}, board {lat.agreement:.4f} of "
        f"{lat.n}; flash {fp.flash_bytes} B, RAM {fp.ram_bytes} B, "
        f"{lat.instructions_per_prediction:.0f} instructions = {lat.estimated_ms:.3f} ms"
    )


def acs() -> tuple:
    """Held out from the tuning of the zig flags: US Census employment (Massachusetts 2015, 16
    features as numbers, categories by their codes); train on 10,000 rows, check the next 2,000."""
    df = pd.read_parquet(
        os.environ.get("RETRAINER_SHARED_DATA", "/work/shared/data") + "/employment_MA_reference.pq"
    )
    features = [c for c in df.columns if c not in ("id", "employed", "year", "prediction")]
    features.remove("predicted_probability")
    X = df[features].apply(lambda c: c.astype(float)).to_numpy()
    y = df["employed"].to_numpy()
    return X[:10_000], y[:10_000], X[10_000:12_000], y[10_000:12_000]


def toolchains(datasets: tuple = (("elec2", elec2), ("hapt", hapt))) -> None:
    """GNU + QEMU against zig + unicorn on the same models, rows and target."""
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rows = []
    for data, load in datasets:
        X_train, y_train, X_test, _ = load()
        X_board = X_test[: TARGET.board_rows]
        for label, make in MODELS.items():
            model = make().fit(X_train, y_train)
            export = export_c(model)
            expected = model.predict(X_board)
            built = {tc: _build(export, tc, X_board, expected) for tc in ("gnu", "zig")}
            gnu, pip = built["gnu"], built["zig"]
            on_unicorn = _gnu_on_unicorn(export, X_board, expected)
            flash_ratio = pip[0].flash_bytes / gnu[0].flash_bytes
            model_ratio = pip[0].model_flash_bytes / gnu[0].model_flash_bytes
            rows.append(
                {
                    "data": data,
                    "model": label,
                    "flash B gnu": gnu[0].flash_bytes,
                    "flash B zig": pip[0].flash_bytes,
                    "zig/gnu flash": f"{flash_ratio:.3f}",
                    "model flash B gnu": gnu[0].model_flash_bytes,
                    "model flash B zig": pip[0].model_flash_bytes,
                    "zig/gnu model flash": f"{model_ratio:.3f}",
                    "model code B gnu": gnu[3],
                    "model code B zig": pip[3],
                    "RAM B gnu": gnu[0].ram_bytes,
                    "RAM B zig": pip[0].ram_bytes,
                    "agree qemu (gnu)": f"{gnu[1].agreement:.4f}",
                    "agree unicorn (zig)": f"{pip[1].agreement:.4f}",
                    "instr qemu (gnu)": f"{gnu[1].instructions_per_prediction:.0f}",
                    "instr unicorn (gnu)": f"{on_unicorn.instructions_per_prediction:.0f}",
                    "instr unicorn (zig)": f"{pip[1].instructions_per_prediction:.0f}",
                    "s gnu+qemu": f"{gnu[2]:.1f}",
                    "s zig+unicorn": f"{pip[2]:.1f}",
                }
            )
    table = pd.DataFrame(rows)
    print(
        f"target {TARGET.name} (Cortex-M4F, hard float), {TARGET.board_rows} test rows on the "
        f"board; gnu: {_gnu_version()} -Os, newlib-nano, QEMU mps2-an386 -icount; "
        f"zig: {zig.version()} -Oz (runtime -Os), bare metal, unicorn {_unicorn_version()}, "
        "counted per block"
    )
    print(
        "flash = text + data of the linked image (startup and libraries included); model flash "
        "= minus the same image without the model (the compared quantity); model code = its "
        "object's code and tables (the rest of model flash: libgcc or compiler_rt); RAM = data "
        "+ bss + stack (-fstack-usage); "
        "instr = instructions per prediction (QEMU's window also holds the call and a timer "
        "read); s = wall seconds for compile, link, footprint and board run (warm caches)"
    )
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))


def _build(export, toolchain: str, X, expected) -> tuple:
    """Footprint and board run of one toolchain, the wall seconds they took, and the bytes of
    code and tables in the model's own object (the rest of its flash is library code)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        obj = compile_for_target(export, TARGET, tmp, toolchain=toolchain)
        fp = measure_footprint(export, TARGET, model_object=obj, toolchain=toolchain)
        lat = measure_latency(export, TARGET, X, expected, model_object=obj, toolchain=toolchain)
        seconds = time.perf_counter() - start
        image = read_image(obj)
    assert fp.measured and lat.measured, (fp.reason, lat.reason)
    return fp, lat, seconds, image.text + image.data


def _gnu_on_unicorn(export, X, expected):
    """The GNU image run by unicorn (QEMU hidden)."""
    real = latency_module.find_tool
    latency_module.find_tool = lambda t: None if t == latency_module.QEMU else real(t)
    try:
        return measure_latency(export, TARGET, X, expected, toolchain="gnu")
    finally:
        latency_module.find_tool = real


def _gnu_version() -> str:
    from retrainer.deploy.tinyml.footprint import _version

    return _version("gnu")


def _unicorn_version() -> str:
    import unicorn

    return unicorn.__version__


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    {
        "stages": stages,
        "toolchains": toolchains,
        "toolchains acs": lambda: toolchains((("acs", acs),)),
    }.get(" ".join(sys.argv[1:]), main)()
