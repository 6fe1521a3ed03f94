"""Parity: compile the exported C on the host, run it on real rows, compare with Python."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrainer.deploy.tinyml.domain import F32_MAX, device_values
from retrainer.deploy.tinyml.export import CExport
from retrainer.deploy.tinyml.host import HostCompiler, host_compiler
from retrainer.deploy.tinyml.toolchain import HOST_FLAGS, cached_object, run_tool
from retrainer.errors import DataError, RetrainerError

# A regression prediction "agrees" when it is within this share of max(1, |python value|).
REGRESSION_RTOL = 1e-4
_SHOWN = 10


@dataclass(frozen=True)
class ParityResult:
    """How often the compiled C predicts what the Python model predicts, on the same rows.

    Parameters
    ----------
    n
        Rows compared.
    agreement
        Share of rows where C and Python agree (regression: within ``REGRESSION_RTOL``).
    n_disagreements
        Rows where they differ.
    disagreeing_rows
        The first few of those row positions.
    c_accuracy, python_accuracy
        Accuracy against ``y`` when labels were given (classification only).
    max_abs_error
        Largest ``|C - Python|`` for a regressor.
    host_ns_per_prediction
        Host time per C prediction (nanoseconds, timed passes over all rows).
    compiler
        The host compiler as it ran (``/usr/bin/cc``, or ``<python> -m ziglang cc``).
    n_non_finite
        Rows holding NaN or infinity (compared like the others).
    n_refused
        Rows both Python and the C refused (a NaN or infinity the model does not accept).
    flags
        The host compiler flags of the check.
    toolchain
        ``cc`` (the system compiler) or ``zig`` (``python -m ziglang cc``, the ``mcu`` extra).
    version
        The host compiler's version line.
    """

    n: int
    agreement: float
    n_disagreements: int
    disagreeing_rows: tuple[int, ...]
    c_accuracy: float | None
    python_accuracy: float | None
    max_abs_error: float | None
    host_ns_per_prediction: float
    compiler: str
    n_non_finite: int = 0
    n_refused: int = 0
    flags: tuple[str, ...] = ()
    toolchain: str = "cc"
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def check_parity(
    export: CExport,
    X: Any,
    python_predictions: Any,
    *,
    refused: Any = None,
    y: Any = None,
    workdir: str | Path | None = None,
    repeats: int = 3,
) -> ParityResult:
    """Compile ``export`` for this machine, predict every row of ``X`` in C and compare.

    The host compiler is the system ``cc``, else ``python -m ziglang cc`` from the ``mcu`` extra
    (:func:`~retrainer.deploy.tinyml.host.host_compiler`); either builds with ``HOST_FLAGS``.

    A row Python refuses (``refused``: NaN or infinity the model does not accept) agrees when
    the C refuses it too; rows with NaN or infinity are compared like all others.

    Parameters
    ----------
    export
        The C export of the model.
    X
        Rows to predict (array or DataFrame; a DataFrame is reordered to ``export.feature_names``
        when it has those columns).
    python_predictions
        The Python model's ``predict(X)`` (see
        :func:`~retrainer.deploy.tinyml.domain.python_reference` for rows it refuses).
    refused
        Boolean mask of the rows Python refuses (default: none).
    y
        True labels, to also report the accuracy of the C model.
    workdir
        Directory for the build (kept); default a temporary directory that is removed.
    repeats
        Timed passes over ``X`` for ``host_ns_per_prediction``.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> X = [[0.0], [0.1], [0.5], [1.0]]
    >>> tree = DecisionTreeClassifier().fit(X, [0, 0, 1, 1])
    >>> result = check_parity(export_c(tree), X, tree.predict(X), y=[0, 0, 1, 1])
    >>> result.agreement, result.c_accuracy
    (1.0, 1.0)
    """
    features = feature_matrix(export, X)
    expected = np.asarray(python_predictions)
    if expected.shape[0] != features.shape[0]:
        raise DataError(
            f"python_predictions has {expected.shape[0]} values but X has {features.shape[0]} rows"
        )
    if repeats < 1:
        raise RetrainerError(f"repeats must be at least 1, got {repeats}")
    compiler = host_compiler()
    if compiler is None:
        raise RetrainerError(
            "no host C compiler: install gcc (apt-get install gcc) or pip install "
            "'retrainer[mcu]' (zig's clang) for parity"
        )
    refused = _refused_mask(refused, features.shape[0])
    if workdir is not None:
        return _run(export, features, expected, refused, y, Path(workdir), compiler, repeats)
    with tempfile.TemporaryDirectory(prefix="retrainer-parity-") as tmp:
        return _run(export, features, expected, refused, y, Path(tmp), compiler, repeats)


def _refused_mask(refused: Any, n: int) -> np.ndarray:
    if refused is None:
        return np.zeros(n, dtype=bool)
    mask = np.asarray(refused, dtype=bool)
    if mask.shape != (n,):
        raise DataError(f"refused has shape {mask.shape}; X has {n} rows")
    return mask


def feature_matrix(export: CExport, X: Any) -> np.ndarray:
    """``X`` as the C model reads it: C-ordered float32 (NaN and infinity kept), checked for width.

    A value beyond the float32 range becomes the infinity of its sign, as on the device.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> export = export_c(DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1]))
    >>> feature_matrix(export, [[0.5]]).dtype
    dtype('float32')
    """
    columns = getattr(X, "columns", None)
    if columns is not None:
        names = [str(c) for c in columns]
        missing = [f for f in export.feature_names if f not in names]
        if not missing:
            X = X[list(export.feature_names)]
        elif not _default_names(export):
            raise DataError(f"X lacks the model's feature columns: {', '.join(missing)}")
        columns = [str(c) for c in X.columns]
    values = device_values(X)
    if values.ndim != 2 or values.shape[1] != export.n_features:
        raise DataError(
            f"X has shape {values.shape}; the C model {export.name} takes {export.n_features} "
            "features per row"
        )
    return np.ascontiguousarray(values, dtype=np.float32)


def _default_names(export: CExport) -> bool:
    return export.feature_names == tuple(f"x{i}" for i in range(export.n_features))


def _run(
    export: CExport,
    features: np.ndarray,
    expected: np.ndarray,
    refused: np.ndarray,
    y: Any,
    work: Path,
    compiler: HostCompiler,
    repeats: int,
) -> ParityResult:
    work.mkdir(parents=True, exist_ok=True)
    export.write(work)
    classification = export.task == "classification"
    what = f"host compile of {export.name}"
    program, *lead = compiler.command
    harness = cached_object(
        program,
        [*lead, *HOST_FLAGS],
        {"parity-main.c": _harness(export, classification), f"{export.name}.h": export.header},
        "parity-main.c",
        what=what,
    )
    includes = [f"-I{d}" for d in (str(work), *export.include_dirs)]
    binary = work / "parity"
    run_tool(
        [*compiler.command, *HOST_FLAGS, *includes, "-o", binary, harness, f"{export.name}.c"]
        + ["-lm"],
        cwd=work,
        what=what,
    )
    features.tofile(work / "features.bin")
    out = run_tool(
        [binary, "features.bin", "predictions.bin", str(repeats)],
        cwd=work,
        what=f"host run of {export.name}",
    )
    raw = np.fromfile(work / "predictions.bin", dtype=np.int32 if classification else np.float32)
    predicted, same, max_abs_error = compare_outputs(export, raw, expected, refused)
    c_accuracy = python_accuracy = None
    if y is not None and classification:
        labels = np.asarray(y).astype(object)
        if labels.shape[0] != raw.shape[0]:
            raise DataError(f"y has {labels.shape[0]} labels but X has {raw.shape[0]} rows")
        c_accuracy = float(np.mean(predicted == labels))
        python_accuracy = float(np.mean(expected.astype(object) == labels))
    n = int(same.shape[0])
    wrong = np.flatnonzero(~same)
    return ParityResult(
        n=n,
        agreement=float(same.mean()) if n else 1.0,
        n_disagreements=int(wrong.size),
        disagreeing_rows=tuple(int(i) for i in wrong[:_SHOWN]),
        c_accuracy=c_accuracy,
        python_accuracy=python_accuracy,
        max_abs_error=max_abs_error,
        host_ns_per_prediction=float(out.strip() or "nan"),
        compiler=" ".join(compiler.command),
        n_non_finite=int((~np.isfinite(features)).any(axis=1).sum()),
        n_refused=int((refused & same).sum()),
        flags=HOST_FLAGS,
        toolchain=compiler.toolchain,
        version=compiler.version,
    )


def compare_outputs(
    export: CExport, raw: np.ndarray, expected: np.ndarray, refused: Any = None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Map raw C outputs to predictions and compare them with ``expected`` row by row.

    Returns the predictions (None, or NaN for a regressor, where the C refused the row), a
    boolean "agrees" mask and, for a regressor, the largest absolute error over the rows both
    predicted. A row Python ``refused`` agrees when the C refused it (class index -1, regressor
    NaN). A regression value beyond the float32 range agrees with the C's infinity of its sign.
    Class indices outside ``export.classes`` or a row-count mismatch raise.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> export = export_c(DecisionTreeClassifier().fit([[0.0], [1.0]], ["a", "b"]))
    >>> compare_outputs(export, np.array([0, 1]), np.array(["a", "a"]))[1]
    array([ True, False])
    """
    if raw.shape[0] != expected.shape[0]:
        raise RetrainerError(
            f"the C model {export.name} gave {raw.shape[0]} predictions "
            f"for {expected.shape[0]} rows"
        )
    python_refused = _refused_mask(refused, raw.shape[0])
    if export.task != "classification":
        values = raw.astype(np.float64)
        c_refused = np.isnan(values)
        truth = np.where(python_refused, 0.0, expected.astype(np.float64))
        with np.errstate(invalid="ignore"):
            error = np.abs(values - truth)
            beyond = (np.abs(truth) > F32_MAX) & (values == np.sign(truth) * np.inf)
            close = (error <= REGRESSION_RTOL * np.maximum(1.0, np.abs(truth))) | beyond
        both = ~c_refused & ~python_refused
        same = np.where(python_refused, c_refused, both & close)
        shown = error[both & ~beyond]
        return values, same, float(shown.max()) if shown.size else 0.0
    c_refused = raw == -1
    if raw.size and (raw.min() < -1 or raw.max() >= len(export.classes)):
        raise RetrainerError(
            f"the C model {export.name} returned class index "
            f"{int(raw.max() if raw.max() >= len(export.classes) else raw.min())} outside "
            f"0..{len(export.classes) - 1} (-1: refused)"
        )
    predicted = np.asarray([*export.classes, None], dtype=object)[raw]
    equal = np.asarray(predicted == expected.astype(object), dtype=bool)
    same = np.where(python_refused, c_refused, ~c_refused & equal)
    return predicted, same, None


def _harness(export: CExport, classification: bool) -> str:
    out_type = "int32_t" if classification else "float"
    n_features = export.n_features
    predict = export.predict_function
    return f"""#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "{export.name}.h"

/* usage: parity features.bin predictions.bin repeats
 * features.bin: rows of {n_features} native float32; prints nanoseconds per prediction. */
int main(int argc, char **argv)
{{
    if (argc != 4) {{
        fprintf(stderr, "usage: %s features.bin predictions.bin repeats\\n", argv[0]);
        return 2;
    }}
    FILE *in = fopen(argv[1], "rb");
    if (in == NULL || fseek(in, 0, SEEK_END) != 0) {{
        fprintf(stderr, "cannot read %s\\n", argv[1]);
        return 1;
    }}
    const long size = ftell(in);
    rewind(in);
    const long row_bytes = (long)sizeof(float) * {n_features};
    if (size < 0 || size % row_bytes != 0) {{
        fprintf(stderr, "%s is not a whole number of rows\\n", argv[1]);
        return 1;
    }}
    const long n_rows = size / row_bytes;
    float *x = malloc((size_t)size + sizeof(float));
    {out_type} *y = malloc((size_t)n_rows * sizeof({out_type}) + sizeof({out_type}));
    if (x == NULL || y == NULL || fread(x, 1, (size_t)size, in) != (size_t)size) {{
        fprintf(stderr, "cannot load %s\\n", argv[1]);
        return 1;
    }}
    fclose(in);
    for (long r = 0; r < n_rows; r++) {{
        y[r] = {predict}(x + r * {n_features});
    }}
    FILE *out = fopen(argv[2], "wb");
    if (out == NULL || fwrite(y, sizeof({out_type}), (size_t)n_rows, out) != (size_t)n_rows) {{
        fprintf(stderr, "cannot write %s\\n", argv[2]);
        return 1;
    }}
    fclose(out);
    const long repeats = strtol(argv[3], NULL, 10);
    volatile {out_type} sink = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < repeats; k++) {{
        for (long r = 0; r < n_rows; r++) {{
            sink = {predict}(x + r * {n_features});
        }}
    }}
    clock_gettime(CLOCK_MONOTONIC, &t1);
    (void)sink;
    const double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    const double calls = (double)repeats * (double)(n_rows > 0 ? n_rows : 1);
    printf("%.3f\\n", ns / calls);
    free(x);
    free(y);
    return 0;
}}
"""
