"""Fixes for upstream changes, applied to every batch at ingest (``data.fixes``).

A fix is a small mapping, written in the project file or accepted from a diagnosis with
``retrainer accept-fix``:

```yaml
data:
  fixes:
    rename: {nswprice_v2: nswprice}       # the batch's name -> the schema's name
    parse_units: {pressure: {hPa: [1, 0], Pa: [0.01, 0]}}  # "1014.7 hPa" -> 1014.7 (a*x+b)
    scale: {nswdemand: 0.001}             # multiply (a unit change x1000 back)
    affine: {temp: [0.5555555556, -17.77777778]}  # a*x+b (Fahrenheit back to Celsius)
    recode: {MAR: {"1": "5", "5": "1"}}   # the batch's code -> the reference's code
    missing_values: {transfer: [-1.0]}    # values that mean "no value": read as null
```

They apply in that order: rename, parse units (numbers sent as text with a unit suffix, each
unit converted by its ``[a, b]``), missing values (in the producer's units), recode, scale,
affine.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"p_v2": [1000.0, -1.0], "c": ["1", "5"]})
    >>> fixes = {"rename": {"p_v2": "p"}, "missing_values": {"p": [-1.0]},
    ...          "scale": {"p": 0.001}, "recode": {"c": {"1": "5", "5": "1"}}}
    >>> fixed = apply_fixes(frame, fixes)
    >>> fixed["p"].tolist(), fixed["c"].tolist()
    ([1.0, nan], ['5', '1'])
    >>> apply_fixes(pd.DataFrame({"t": ["50 F", "68 F"]}),
    ...             {"parse_units": {"t": {"F": [1, 0]}}, "affine": {"t": [5 / 9, -160 / 9]}}
    ...             )["t"].round(6).tolist()
    [10.0, 20.0]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from retrainer.data.schema import as_text, strip_units
from retrainer.errors import DataError

SECTIONS = ("rename", "parse_units", "scale", "affine", "recode", "missing_values")


def merge_fixes(*fixes: Mapping | None) -> dict:
    """Merge fix mappings section by section; later ones win per column.

    Example:
        >>> merge_fixes({"scale": {"a": 0.001}}, {"scale": {"b": 10.0}, "rename": {"x": "y"}})
        {'scale': {'a': 0.001, 'b': 10.0}, 'rename': {'x': 'y'}}
    """
    merged: dict = {}
    for fix in fixes:
        for section, entries in (fix or {}).items():
            if section not in SECTIONS:
                raise DataError(f"unknown fix {section!r}; known fixes are {', '.join(SECTIONS)}")
            if entries:
                merged.setdefault(section, {}).update(entries)
    return merged


def apply_fixes(frame: pd.DataFrame, fixes: Mapping, where: str = "batch") -> pd.DataFrame:
    """A copy of ``frame`` with ``fixes`` applied; columns a fix names but the batch lacks are
    left alone (the producer may have fixed it already).

    Parameters:
        frame: the batch as it arrived.
        fixes: a mapping with the sections ``rename``, ``missing_values``, ``recode``, ``scale``.
        where: the batch's name for error messages.
    """
    fixes = merge_fixes(fixes)
    if not fixes:
        return frame
    out = frame.rename(columns={old: new for old, new in fixes.get("rename", {}).items()})
    for name, factors in fixes.get("parse_units", {}).items():
        if name in out.columns:
            out[name] = strip_units(out[name], dict(factors))
    for name, values in fixes.get("missing_values", {}).items():
        if name in out.columns:
            out[name] = _without(out[name], list(values))
    for name, mapping in fixes.get("recode", {}).items():
        if name in out.columns:
            text = as_text(out[name])
            out[name] = text.map(lambda v, m=mapping: m.get(v, v) if isinstance(v, str) else v)
    for name, factor in fixes.get("scale", {}).items():
        if name not in out.columns:
            continue
        out[name] = _numbers(out[name], name, where, "scale") * float(factor)
    for name, (a, b) in fixes.get("affine", {}).items():
        if name in out.columns:
            out[name] = _numbers(out[name], name, where, "affine") * float(a) + float(b)
    return out


def _numbers(series: pd.Series, name: str, where: str, section: str) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    if (values.isna() & series.notna()).any():
        raise DataError(
            f"{where}: data.fixes.{section} names column {name!r}, which holds non-numbers"
        )
    return values


def _without(series: pd.Series, values: list) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = [float(v) for v in values if _is_number(v)]
        return series.where(~series.isin(numbers), np.nan)
    text = as_text(series)
    return text.where(~text.isin([str(v) for v in values]), np.nan)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
