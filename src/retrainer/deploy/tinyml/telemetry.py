"""Device telemetry: a fixed-memory C sketch that profiles a model's inputs and predictions on the
microcontroller, and the decoder that turns its binary report into the server's profiles.

The sketch is generated per model version from the version's reference profile: each numeric
feature gets the reference's histogram edges (the same bins the server uses, with the two open
outer bins), its null / non-finite / out-of-range counts, min, max, moments to the fourth and the
longest run of one repeated value; predictions are counted per class (or, for a regressor,
profiled like a feature without histogram). Memory is fixed at build time: about
``64 + 12 * (edges + 1)`` bytes per feature (472 bytes with 32 bins).

The device sees its features as float32 (the model's input type); edges and bounds are compiled
as the nearest float32, so a value equal to an edge (reference edges are often data values) falls
in the same bin as on the server. The device's counts equal the server's profile of the same rows
except for a value closer to an edge than float32 resolves (about 6e-8 relative) without being
equal to it.

A report is little-endian: magic ``RTTL``, format version, feature and class counts, the layout
fingerprint (first 8 bytes of a SHA-256 over features, edges, bounds and classes), model version,
sequence number, row count, device id and target (32 bytes each, NUL padded), one block per
feature, the prediction block, and a CRC-32 (zlib's) of everything before it.

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> frame = pd.DataFrame({"x": np.linspace(0.0, 1.0, 50)})
    >>> reference = BatchProfile.from_frame(frame, Schema.infer(frame), bins=4)
    >>> layout = TelemetryLayout.build(reference, ["x"], version=3, classes=["0", "1"])
    >>> sorted(sketch_files(layout, target="cortex-m4f"))
    ['model_telemetry.c', 'model_telemetry.h']
    >>> layout.report_bytes
    248
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrainer.data.schema import Schema
from retrainer.errors import DataError
from retrainer.profile.batch import BatchProfile
from retrainer.profile.column import ColumnProfile

MAGIC = b"RTTL"
FORMAT = 1
ID_BYTES = 32
HEADER = struct.Struct("<4sHHHH8sIII32s32s")
FEATURE = struct.Struct("<6I2f4d")
CRC = struct.Struct("<I")
PREDICTION = "prediction"
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,30}$")
_C_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


@dataclass(frozen=True)
class FeatureLayout:
    """What the sketch keeps for one feature: its reference edges and the schema's bounds."""

    name: str
    edges: tuple[float, ...]
    min: float | None = None
    max: float | None = None

    @property
    def bins(self) -> int:
        """Histogram bins (the edges' inner bins plus two open outer ones; 0 without edges)."""
        return len(self.edges) + 1 if self.edges else 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "edges": list(self.edges), "min": self.min, "max": self.max}


@dataclass(frozen=True)
class TelemetryLayout:
    """The shape of one model version's sketch and report: features, edges, bounds, classes.

    Parameters:
        version: the model version the sketch is built for (compiled into every report).
        features: one :class:`FeatureLayout` per model input, in the model's input order.
        classes: class labels in the C model's output order; empty for a regressor.
        name: the C prefix (``<name>_telemetry.c``).
    """

    version: int
    features: tuple[FeatureLayout, ...]
    classes: tuple[str, ...] = ()
    name: str = "model"

    @classmethod
    def build(
        cls,
        reference: BatchProfile | Mapping[str, Any],
        features: Sequence[str],
        *,
        version: int,
        classes: Sequence[Any] = (),
        schema: Schema | None = None,
        name: str = "model",
    ) -> TelemetryLayout:
        """The layout of a model version from its reference profile (and the schema's bounds).

        Parameters:
            reference: the version's reference profile (object or its ``to_dict``).
            features: the model's input columns in order (all numeric: the C model takes floats).
            version: the model version.
            classes: class labels in output order (empty for a regressor).
            schema: the data contract; its ``min``/``max`` give the out-of-range counts.
            name: C prefix.
        """
        if not isinstance(reference, BatchProfile):
            reference = BatchProfile.from_dict(dict(reference))
        if not _C_NAME.match(name):
            raise DataError(f"telemetry: {name!r} is not a C identifier prefix")
        if not isinstance(version, int) or not 0 < version < 2**32:
            raise DataError(f"telemetry: model version {version!r} is not a positive integer")
        items = []
        for column in features:
            ref = reference.columns.get(column)
            if ref is None or ref.kind != "numeric":
                kind = "absent" if ref is None else ref.kind
                raise DataError(
                    f"telemetry: feature {column!r} is {kind} in the reference profile of "
                    f"version {version}; the device sketch profiles numeric features only"
                )
            spec = schema[column] if schema is not None and column in schema else None
            items.append(
                FeatureLayout(
                    name=str(column),
                    edges=tuple(float(e) for e in ref.edges or ()),
                    min=None if spec is None or spec.min is None else float(spec.min),
                    max=None if spec is None or spec.max is None else float(spec.max),
                )
            )
        if len(classes) >= 2**16 or len(items) >= 2**16:
            raise DataError("telemetry: more than 65535 features or classes")
        return cls(version, tuple(items), tuple(str(c) for c in classes), name)

    @property
    def classification(self) -> bool:
        return bool(self.classes)

    @property
    def fingerprint(self) -> bytes:
        """8 bytes that change with any feature, edge, bound or class (not with the version)."""
        text = json.dumps(
            {"features": [f.to_dict() for f in self.features], "classes": list(self.classes)},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode("utf-8")).digest()[:8]

    @property
    def report_bytes(self) -> int:
        """Size of every report of this layout."""
        per_feature = sum(FEATURE.size + 12 * f.bins for f in self.features)
        predictions = 4 * (len(self.classes) + 1) if self.classes else FEATURE.size
        return HEADER.size + per_feature + predictions + CRC.size

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (stored in the bundle manifest)."""
        return {
            "version": self.version,
            "name": self.name,
            "features": [f.to_dict() for f in self.features],
            "classes": list(self.classes),
            "fingerprint": self.fingerprint.hex(),
            "report_bytes": self.report_bytes,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TelemetryLayout:
        return cls(
            version=int(d["version"]),
            features=tuple(
                FeatureLayout(
                    str(f["name"]), tuple(float(e) for e in f["edges"]), f["min"], f["max"]
                )
                for f in d["features"]
            ),
            classes=tuple(str(c) for c in d["classes"]),
            name=str(d.get("name", "model")),
        )


@dataclass(frozen=True)
class ReportHeader:
    """Who sent a report: device, target, model version, sequence number, rows, fingerprint."""

    device: str
    target: str
    version: int
    sequence: int
    n_rows: int
    fingerprint: str
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "target": self.target,
            "version": self.version,
            "sequence": self.sequence,
            "n_rows": self.n_rows,
            "fingerprint": self.fingerprint,
            "format": self.format,
        }


@dataclass(frozen=True)
class TelemetryReport:
    """A decoded device report: its header, the feature profile and the prediction profile.

    ``profile`` merges with (and is checked against) the server's profiles of the same version;
    ``predictions`` is a categorical profile of predicted class labels (numeric for a regressor).
    """

    header: ReportHeader
    profile: BatchProfile
    predictions: ColumnProfile = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.header.to_dict(),
            "profile": self.profile.to_dict(),
            "predictions": self.predictions.to_dict(),
        }


def read_header(data: bytes) -> ReportHeader:
    """The header of a report, after checking its size, magic, format and checksum.

    Raises :class:`~retrainer.errors.DataError` naming what is wrong.

    Example:
        >>> read_header(b"RTTL")
        Traceback (most recent call last):
        ...
        retrainer.errors.DataError: telemetry report: truncated: 4 bytes, a report has at least 100
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"telemetry report: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    minimum = HEADER.size + CRC.size
    if len(data) < minimum:
        raise DataError(
            f"telemetry report: truncated: {len(data)} bytes, a report has at least {minimum}"
        )
    magic, fmt, _, _, _, fingerprint, version, sequence, rows, device, target = HEADER.unpack_from(
        data
    )
    if magic != MAGIC:
        raise DataError(
            f"telemetry report: not a retrainer report (starts with {magic!r}, not {MAGIC!r})"
        )
    if fmt != FORMAT:
        raise DataError(
            f"telemetry report: format version {fmt}; this retrainer reads format {FORMAT} "
            "(rebuild the firmware with this retrainer's bundle, or upgrade retrainer)"
        )
    (stored,) = CRC.unpack_from(data, len(data) - CRC.size)
    computed = zlib.crc32(data[: -CRC.size])
    if stored != computed:
        raise DataError(
            f"telemetry report: checksum mismatch (stored {stored:08x}, computed {computed:08x}): "
            f"the report of {len(data)} bytes is corrupt or truncated"
        )
    return ReportHeader(
        device=_text(device, "device id"),
        target=_text(target, "target"),
        version=version,
        sequence=sequence,
        n_rows=rows,
        fingerprint=fingerprint.hex(),
    )


def decode_report(data: bytes, layout: TelemetryLayout) -> TelemetryReport:
    """Decode a report made by the sketch of ``layout`` into mergeable profiles.

    Parameters:
        data: the report bytes as the device sent them.
        layout: the layout of the model version the report names (see :func:`read_header`).

    Raises :class:`~retrainer.errors.DataError` for a truncated, corrupt, foreign,
    wrong-format or wrong-model report, or counts that do not add up, naming the problem.
    """
    header = read_header(data)
    data = bytes(data)
    _, _, n_features, n_classes, _, _, _, _, _, _, _ = HEADER.unpack_from(data)
    if header.version != layout.version:
        raise DataError(
            f"telemetry report from device {header.device!r}: model version {header.version}, "
            f"decoded with the layout of version {layout.version}"
        )
    if (
        n_features != len(layout.features)
        or n_classes != len(layout.classes)
        or header.fingerprint != layout.fingerprint.hex()
    ):
        raise DataError(
            f"telemetry report from device {header.device!r}: made by a sketch for another model "
            f"({n_features} features, {n_classes} classes, fingerprint {header.fingerprint}) "
            f"than version {layout.version} ({len(layout.features)} features, "
            f"{len(layout.classes)} classes, fingerprint {layout.fingerprint.hex()})"
        )
    if len(data) != layout.report_bytes:
        raise DataError(
            f"telemetry report from device {header.device!r}: {len(data)} bytes, version "
            f"{layout.version}'s reports have {layout.report_bytes}"
        )
    offset = HEADER.size
    columns = {}
    for feature in layout.features:
        column, offset = _feature(data, offset, feature, header)
        columns[feature.name] = column
    if layout.classification:
        counts = struct.unpack_from(f"<{n_classes + 1}I", data, offset)
        invalid = counts[-1]
        predictions = ColumnProfile(
            PREDICTION,
            "categorical",
            count=sum(counts),
            invalid=invalid,
            categories={c: n for c, n in zip(layout.classes, counts[:-1], strict=True) if n},
            distinct=sum(1 for n in counts[:-1] if n),
        )
    else:
        predictions, _ = _feature(data, offset, FeatureLayout(PREDICTION, ()), header)
    if predictions.count != header.n_rows:
        raise DataError(
            f"telemetry report from device {header.device!r}: {predictions.count} predictions "
            f"counted for {header.n_rows} rows"
        )
    return TelemetryReport(header, BatchProfile(columns, header.n_rows), predictions)


def _feature(
    data: bytes, offset: int, feature: FeatureLayout, header: ReportHeader
) -> tuple[ColumnProfile, int]:
    nulls, non_finite, below, above, max_run, values, lo, hi, mean, m2, m3, m4 = (
        FEATURE.unpack_from(data, offset)
    )
    offset += FEATURE.size
    bins = feature.bins
    hist = struct.unpack_from(f"<{bins}I", data, offset) if bins else ()
    offset += 4 * bins
    sums = struct.unpack_from(f"<{bins}d", data, offset) if bins else ()
    offset += 8 * bins
    where = f"telemetry report from device {header.device!r}, feature {feature.name!r}"
    count = nulls + non_finite + values
    if count != header.n_rows:
        raise DataError(
            f"{where}: {values} values + {nulls} nulls + {non_finite} non-finite "
            f"!= {header.n_rows} rows"
        )
    if bins and sum(hist) != values:
        raise DataError(f"{where}: the histogram holds {sum(hist)} values, not {values}")
    _check_plausible(where, values, header.n_rows, below, above, max_run, lo, hi)
    if values:
        _check_moments(where, values, lo, hi, mean, m2, m3, m4, sums)
    has = bool(values)
    return (
        ColumnProfile(
            feature.name,
            "numeric",
            count=count,
            nulls=nulls,
            non_finite=non_finite,
            below_min=below,
            above_max=above,
            min=float(lo) if has else None,
            max=float(hi) if has else None,
            mean=mean if has else None,
            m2=m2 if has else 0.0,
            m3=m3 if has else 0.0,
            m4=m4 if has else 0.0,
            edges=feature.edges if bins else None,
            hist=tuple(hist) if bins else None,
            sums=tuple(sums) if bins else None,
            max_run=max_run if has else 0,
        ),
        offset,
    )


# Relative slack for the moments: the device sums in double, one value at a time.
_SLACK = 1e-9


def _check_plausible(
    where: str, values: int, rows: int, below: int, above: int, max_run: int, lo: float, hi: float
) -> None:
    """Counts and bounds a real sketch cannot produce raise DataError naming the field."""
    for field_name, count in (("below_min", below), ("above_max", above)):
        if count > values:
            raise DataError(f"{where}: {field_name} {count} is more than its {values} values")
    if max_run > rows:
        raise DataError(f"{where}: max_run {max_run} is longer than the report's {rows} rows")
    if values and not (math.isfinite(lo) and math.isfinite(hi)):
        raise DataError(f"{where}: min {lo} / max {hi} is not finite (infinities are counted)")
    if values and not lo <= hi:
        raise DataError(f"{where}: min {lo} is above max {hi}")


def _check_moments(
    where: str,
    n: int,
    lo: float,
    hi: float,
    mean: float,
    m2: float,
    m3: float,
    m4: float,
    sums: Sequence[float],
) -> None:
    """Moments a real sketch cannot produce raise DataError naming the field.

    ``m2`` and ``m4`` are sums of squared and fourth-power deviations from the mean: not
    negative, and ``n * m4 >= m2**2`` (Cauchy-Schwarz); the mean lies within [min, max] and
    equals the bin sums over ``n``.
    """
    for field_name, value in (("mean", mean), ("m2", m2), ("m3", m3), ("m4", m4)):
        if not math.isfinite(value):
            raise DataError(f"{where}: {field_name} is {value}, not a finite number")
    scale = max(abs(lo), abs(hi), 1e-300)
    if not lo - _SLACK * scale <= mean <= hi + _SLACK * scale:
        raise DataError(f"{where}: mean {mean} lies outside [min {lo}, max {hi}]")
    spread = (hi - lo) ** 2
    if m2 < -_SLACK * n * spread:
        raise DataError(f"{where}: m2 {m2} is negative: a variance cannot be")
    if m2 > n * spread * (1 + _SLACK) + _SLACK * scale**2:
        raise DataError(f"{where}: m2 {m2} is larger than {n} values within [{lo}, {hi}] allow")
    if m4 < -_SLACK * n * spread**2:
        raise DataError(f"{where}: m4 {m4} is negative: a sum of fourth powers cannot be")
    if n * m4 < m2 * m2 * (1 - 1e-6) - _SLACK * n * spread**2:
        raise DataError(f"{where}: m4 {m4} is below m2**2 / n = {m2 * m2 / n}: impossible")
    if sums:
        total = math.fsum(sums)
        if abs(total - mean * n) > 1e-6 * n * scale:
            raise DataError(
                f"{where}: the bin sums add to {total}, but mean {mean} x {n} values is {mean * n}"
            )


def _text(raw: bytes, what: str) -> str:
    text = raw.split(b"\0", 1)[0]
    try:
        value = text.decode("ascii")
    except UnicodeDecodeError:
        value = ""
    if not _DEVICE_ID.match(value):
        raise DataError(
            f"telemetry report: {what} {text[:32]!r} is not 1-31 letters, digits or ._:-"
        )
    return value


def check_device_id(device: str) -> str:
    """``device`` if it is a valid device id (1-31 letters, digits or ``._:-``), else DataError.

    Example:
        >>> check_device_id("sensor-0042")
        'sensor-0042'
    """
    if not isinstance(device, str) or not _DEVICE_ID.match(device):
        raise DataError(f"device id {device!r} must be 1-31 letters, digits or ._:- ")
    return device


# ----------------------------------------------------------------------------- C sketch
def _f32(value: float) -> float:
    """The nearest float32 (what the device's float comparison sees)."""
    return float(np.float32(value))


def _c_float(value: float) -> str:
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    text = f"{value:.9g}"
    return f"{text}f" if any(c in text for c in ".e") else f"{text}.0f"


def _c_list(values: Sequence[str], per_line: int = 6) -> str:
    if not values:
        return "{0}"
    rows = [", ".join(values[i : i + per_line]) for i in range(0, len(values), per_line)]
    return "{\n    " + ",\n    ".join(rows) + "\n}"


def sketch_files(layout: TelemetryLayout, *, target: str) -> dict[str, str]:
    """The C header and source of the telemetry sketch of ``layout``.

    Parameters:
        layout: the model version's layout.
        target: the deploy target name compiled in as ``<NAME>_TELEMETRY_TARGET``.

    Returns ``{"<name>_telemetry.h": ..., "<name>_telemetry.c": ...}``.
    """
    if not _DEVICE_ID.match(target):
        raise DataError(f"telemetry: target name {target!r} does not fit a report")
    n, up = layout.name, layout.name.upper()
    p = f"{n}_telemetry"
    P = f"{up}_TELEMETRY"
    feats = layout.features
    n_bins = sum(f.bins for f in feats)
    edge_start, hist_start, edges, last = [0], [0], [], []
    for f in feats:
        inner = f.edges[:-1] if f.edges else ()
        edges += [_c_float(_f32(e)) for e in inner]
        edge_start.append(len(edges))
        hist_start.append(hist_start[-1] + f.bins)
        last.append(_c_float(_f32(f.edges[-1]) if f.edges else math.inf))
    below = [_c_float(-math.inf if f.min is None else _f32(f.min)) for f in feats]
    above = [_c_float(math.inf if f.max is None else _f32(f.max)) for f in feats]
    names = "".join(f"\n *   {i}: {f.name}" for i, f in enumerate(feats))
    predict_arg = "int32_t prediction" if layout.classification else "float prediction"
    predictions_field = (
        f"    uint32_t predictions[{len(layout.classes) + 1}]; /* per class, then invalid */"
        if layout.classification
        else f"    {p}_column_t predictions;"
    )
    header = f"""/* Generated by retrainer; do not edit.
 * Telemetry sketch of model version {layout.version}.
 *
 * Features, in the order {n}_predict takes them:{names}
 *
 * Use: one static {p}_t; {p}_init once with the device id; {p}_observe after every
 * prediction; {p}_report into a buffer of {P}_REPORT_BYTES bytes to send it, then
 * {p}_clear (the next report gets the next sequence number).
 */
#ifndef {P}_H
#define {P}_H

#include <stddef.h>
#include <stdint.h>

#define {P}_FORMAT {FORMAT}
#define {P}_MODEL_VERSION {layout.version}u
#define {P}_TARGET "{target}"
#define {P}_N_FEATURES {len(feats)}
#define {P}_N_CLASSES {len(layout.classes)}
#define {P}_N_BINS {n_bins}
#define {P}_REPORT_BYTES {layout.report_bytes}

typedef struct {{
    uint32_t nulls, non_finite, below_min, above_max, run, max_run, values;
    float min, max, last;
    double mean, m2, m3, m4;
}} {p}_column_t;

typedef struct {{
    char device_id[{ID_BYTES}];
    uint32_t sequence, rows;
    {p}_column_t features[{max(len(feats), 1)}];
    uint32_t hist[{max(n_bins, 1)}];
    double sums[{max(n_bins, 1)}];
{predictions_field}
}} {p}_t;

/* 0 on success, -1 when the id is empty, longer than {ID_BYTES - 1} bytes or not
 * [A-Za-z0-9._:-]. */
int {p}_init({p}_t *t, const char *device_id, uint32_t sequence);
void {p}_observe({p}_t *t, const float *features, {predict_arg});
/* Bytes written ({P}_REPORT_BYTES), or 0 when capacity is too small. */
size_t {p}_report(const {p}_t *t, uint8_t *out, size_t capacity);
void {p}_clear({p}_t *t);

#endif /* {P}_H */
"""
    observe_prediction = (
        f"""    if (prediction >= 0 && prediction < {P}_N_CLASSES) {{
        t->predictions[prediction]++;
    }} else {{
        t->predictions[{P}_N_CLASSES]++;
    }}"""
        if layout.classification
        else "    update(&t->predictions, prediction, 0, 0, INFINITY, -INFINITY, INFINITY, 0, 0);"
    )
    report_prediction = (
        f"""    for (i = 0; i <= {P}_N_CLASSES; i++) {{
        p = put_u32(p, t->predictions[i]);
    }}"""
        if layout.classification
        else "    p = put_column(p, &t->predictions, 0, 0, 0);"
    )
    source = f"""/* Generated by retrainer; do not edit.
 * Telemetry sketch of model version {layout.version}. */
#include "{p}.h"

#include <math.h>
#include <string.h>

static const uint8_t FINGERPRINT[8] = {{{", ".join(f"0x{b:02x}" for b in layout.fingerprint)}}};
/* Each reference edge but the last, per feature (nearest float32). */
static const float EDGE_GE[] = {_c_list(edges or ["0.0f"])};
static const uint32_t EDGE_START[] = {_c_list([str(s) for s in edge_start], 12)};
static const uint32_t HIST_START[] = {_c_list([str(s) for s in hist_start], 12)};
/* Each feature's last edge: above it is the upper open bin. */
static const float EDGE_LAST[] = {_c_list(last or ["0.0f"])};
static const float BELOW_MIN[] = {_c_list(below or ["0.0f"])};
static const float ABOVE_MAX[] = {_c_list(above or ["0.0f"])};

static void update({p}_column_t *c, float x, uint32_t *hist, double *sums, float last_edge,
                   float below, float above, uint32_t e0, uint32_t e1) {{
    if (c->values + c->nulls + c->non_finite > 0 && x == c->last) {{
        c->run++;
    }} else {{
        c->run = 1;
    }}
    c->last = x;
    if (c->run > c->max_run) {{
        c->max_run = c->run;
    }}
    if (isnan(x)) {{
        c->nulls++;
        return;
    }}
    if (isinf(x)) {{
        c->non_finite++;
        return;
    }}
    if (x < below) {{
        c->below_min++;
    }}
    if (x > above) {{
        c->above_max++;
    }}
    if (c->values == 0 || x < c->min) {{
        c->min = x;
    }}
    if (c->values == 0 || x > c->max) {{
        c->max = x;
    }}
    {{
        /* One-pass central moments (Pebay 2008, eq. 2.1-2.3 with one new value). */
        double n1 = (double)c->values, n = n1 + 1.0;
        double delta = (double)x - c->mean, dn = delta / n, dn2 = dn * dn, t1 = delta * dn * n1;
        c->mean += dn;
        c->m4 += t1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * c->m2 - 4.0 * dn * c->m3;
        c->m3 += t1 * dn * (n - 2.0) - 3.0 * dn * c->m2;
        c->m2 += t1;
        c->values++;
    }}
    if (hist != 0) {{
        /* Bin: how many edges (but the last) are <= x, plus one above the last edge. */
        uint32_t lo = e0, hi = e1, bin;
        while (lo < hi) {{
            uint32_t mid = lo + (hi - lo) / 2;
            if (EDGE_GE[mid] <= x) {{
                lo = mid + 1;
            }} else {{
                hi = mid;
            }}
        }}
        bin = (lo - e0) + (x > last_edge ? 1u : 0u);
        hist[bin]++;
        sums[bin] += (double)x;
    }}
}}

int {p}_init({p}_t *t, const char *device_id, uint32_t sequence) {{
    size_t i, len = device_id ? strlen(device_id) : 0;
    memset(t, 0, sizeof(*t));
    if (len == 0 || len >= {ID_BYTES}) {{
        return -1;
    }}
    for (i = 0; i < len; i++) {{
        char ch = device_id[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ((ch == '.' || ch == '_' || ch == ':' || ch == '-') && i > 0);
        if (!ok) {{
            return -1;
        }}
        t->device_id[i] = ch;
    }}
    t->sequence = sequence;
    return 0;
}}

void {p}_clear({p}_t *t) {{
    char id[{ID_BYTES}];
    uint32_t next = t->sequence + 1u;
    memcpy(id, t->device_id, sizeof(id));
    memset(t, 0, sizeof(*t));
    memcpy(t->device_id, id, sizeof(id));
    t->sequence = next;
}}

void {p}_observe({p}_t *t, const float *features, {predict_arg}) {{
    uint32_t i;
    for (i = 0; i < {P}_N_FEATURES; i++) {{
        uint32_t h = HIST_START[i], has = HIST_START[i + 1] > h;
        update(&t->features[i], features[i], has ? &t->hist[h] : 0, has ? &t->sums[h] : 0,
               EDGE_LAST[i], BELOW_MIN[i], ABOVE_MAX[i], EDGE_START[i], EDGE_START[i + 1]);
    }}
{observe_prediction}
    t->rows++;
}}

static uint8_t *put_u16(uint8_t *p, uint16_t v) {{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}}

static uint8_t *put_f32(uint8_t *p, float v) {{
    uint32_t u;
    memcpy(&u, &v, 4);
    return put_u32(p, u);
}}

static uint8_t *put_f64(uint8_t *p, double v) {{
    uint64_t u;
    memcpy(&u, &v, 8);
    p = put_u32(p, (uint32_t)u);
    return put_u32(p, (uint32_t)(u >> 32));
}}

static uint8_t *put_column(uint8_t *p, const {p}_column_t *c, const uint32_t *hist,
                           const double *sums, uint32_t bins) {{
    uint32_t i;
    p = put_u32(p, c->nulls);
    p = put_u32(p, c->non_finite);
    p = put_u32(p, c->below_min);
    p = put_u32(p, c->above_max);
    p = put_u32(p, c->values ? c->max_run : 0u);
    p = put_u32(p, c->values);
    p = put_f32(p, c->min);
    p = put_f32(p, c->max);
    p = put_f64(p, c->mean);
    p = put_f64(p, c->m2);
    p = put_f64(p, c->m3);
    p = put_f64(p, c->m4);
    for (i = 0; i < bins; i++) {{
        p = put_u32(p, hist[i]);
    }}
    for (i = 0; i < bins; i++) {{
        p = put_f64(p, sums[i]);
    }}
    return p;
}}

static uint32_t crc32(const uint8_t *p, size_t n) {{
    uint32_t crc = 0xFFFFFFFFu;
    int k;
    while (n--) {{
        crc ^= *p++;
        for (k = 0; k < 8; k++) {{
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }}
    }}
    return ~crc;
}}

size_t {p}_report(const {p}_t *t, uint8_t *out, size_t capacity) {{
    uint8_t *p = out;
    uint32_t i;
    if (capacity < {P}_REPORT_BYTES) {{
        return 0;
    }}
    memcpy(p, "RTTL", 4);
    p = put_u16(p + 4, {P}_FORMAT);
    p = put_u16(p, {P}_N_FEATURES);
    p = put_u16(p, {P}_N_CLASSES);
    p = put_u16(p, 0);
    memcpy(p, FINGERPRINT, 8);
    p = put_u32(p + 8, {P}_MODEL_VERSION);
    p = put_u32(p, t->sequence);
    p = put_u32(p, t->rows);
    memcpy(p, t->device_id, {ID_BYTES});
    memset(p + {ID_BYTES}, 0, {ID_BYTES});
    memcpy(p + {ID_BYTES}, {P}_TARGET, sizeof({P}_TARGET));
    p += 2 * {ID_BYTES};
    for (i = 0; i < {P}_N_FEATURES; i++) {{
        p = put_column(p, &t->features[i], &t->hist[HIST_START[i]], &t->sums[HIST_START[i]],
                       HIST_START[i + 1] - HIST_START[i]);
    }}
{report_prediction}
    p = put_u32(p, crc32(out, (size_t)(p - out)));
    return (size_t)(p - out);
}}
"""
    return {f"{p}.h": header, f"{p}.c": source}
