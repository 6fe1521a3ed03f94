"""The schema of a batch: one typed spec per column, inferred from a reference and enforced later.

A schema is a value: infer it from a reference frame, store it with ``to_dict``, and use it to
``validate`` (a list of problems) or ``conform`` (a coerced copy, or a ``DataError`` listing every
problem) each later batch.

Kinds are inferred from the dtype: numbers are ``numeric`` (even with few distinct integer values:
a 0/1 column stays numeric), ``bool`` and strings or other objects are ``categorical``, datetime
dtypes are ``datetime``. An object column holding only numbers is numeric; one holding only
timestamps is datetime. A column with no value at all (not recorded yet) has no kind to read:
its spec is ``typed=False``, and ``typed_by`` takes the kind from the first batch that has values.

Example:
    >>> import pandas as pd
    >>> schema = Schema.infer(pd.DataFrame({"price": [1.5, 2.0], "region": ["NSW", "VIC"]}))
    >>> [(c.name, c.kind) for c in schema.columns]
    [('price', 'numeric'), ('region', 'categorical')]
    >>> schema.conform(pd.DataFrame({"price": ["3"], "region": ["NSW"]}))["price"].dtype
    dtype('float64')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from retrainer.errors import DataError

KINDS = ("numeric", "categorical", "datetime")
MAX_CATEGORIES = 1000
ID_LIKE_MIN_ROWS = 50
ID_LIKE_SHARE = 0.9
NULL_WORDS = frozenset({"", "nan", "na", "n/a", "null", "none", "nat"})
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")
_EXPECTED = {
    "numeric": "expected a number",
    "datetime": "expected an ISO 8601 timestamp (or give date_format=)",
}


@dataclass(frozen=True)
class Problem:
    """One reason a batch does not fit the schema (a missing column, a bad value, ...)."""

    column: str | None
    kind: str
    message: str
    row: int | None = None

    def to_dict(self) -> dict:
        return {"column": self.column, "kind": self.kind, "message": self.message, "row": self.row}


@dataclass(frozen=True)
class ColumnSpec:
    """The expected type, nullability, range and categories of one column; ``typed`` is False
    while the kind is a placeholder (inferred from a column with no value)."""

    name: str
    kind: str
    nullable: bool
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    typed: bool = field(default=True, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: kind {self.kind!r} is not one of {KINDS}")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
            "typed": self.typed,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ColumnSpec:
        cats = d.get("categories")
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            nullable=bool(d.get("nullable", True)),
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
            categories=None if cats is None else tuple(str(c) for c in cats),
            typed=bool(d.get("typed", True)),
        )


def kind_of(series: pd.Series) -> str:
    """The schema kind of a column from its dtype (object columns are looked at more closely).

    Example:
        >>> kind_of(pd.Series([True, False])), kind_of(pd.Series([1, 2]))
        ('categorical', 'numeric')
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        if inferred in ("datetime", "datetime64"):
            return "datetime"
    return "categorical"


def mostly_distinct(values: int, distinct: int) -> bool:
    """Whether ``values`` known values of a text column, ``distinct`` of them distinct, look like
    an id, a name or free text: at least 90 % distinct in 50 values or more.

    Example:
        >>> mostly_distinct(60, 60), mostly_distinct(60, 3), mostly_distinct(10, 10)
        (True, False, False)
    """
    return values >= ID_LIKE_MIN_ROWS and distinct >= ID_LIKE_SHARE * values


def _infer_column(name: str, series: pd.Series, max_categories: int) -> ColumnSpec:
    kind = kind_of(series)
    nullable = bool(series.isna().any())
    if not series.notna().any():  # nothing recorded: the dtype is pandas' default, not a kind
        return ColumnSpec(name, kind, nullable, typed=False)
    if kind == "numeric":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return ColumnSpec(name, kind, nullable)
        return ColumnSpec(name, kind, nullable, float(finite.min()), float(finite.max()))
    if kind == "datetime":
        return ColumnSpec(name, kind, nullable)
    values = as_text(series.dropna())
    distinct = values.unique()
    if mostly_distinct(len(values), len(distinct)) or len(distinct) > max_categories:
        return ColumnSpec(name, kind, nullable)
    return ColumnSpec(name, kind, nullable, categories=tuple(sorted(distinct)))


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= 60 else text[:57] + "...'"


@dataclass(frozen=True)
class Schema:
    """The column specs of a data set, in column order.

    ``ignored`` names columns known to be outside the schema on purpose (the target, an id,
    ...): they are kept by ``conform`` and not reported as extra columns. ``min_rows`` and
    ``max_rows``, when set, are the expected row count of a batch (a quality check).
    """

    columns: tuple[ColumnSpec, ...]
    ignored: tuple[str, ...] = ()
    min_rows: int | None = None
    max_rows: int | None = None

    def types_only(self) -> Schema:
        """The same columns with their kinds and nullability only: a range or a set of
        categories seen in one batch is no contract (a January's temperatures are not the
        year's); the checks then measure both against the champion's reference, the data the
        model learnt from.

        Example:
            >>> schema = Schema.infer(pd.DataFrame({"t": [1.0, 3.0], "c": ["a", "b"]}))
            >>> [(c.min, c.categories) for c in schema.types_only().columns]
            [(None, None), (None, None)]
        """
        columns = tuple(replace(c, min=None, max=None, categories=None) for c in self.columns)
        return replace(self, columns=columns)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schema has duplicated column names {dupes}")
        low, high = self.min_rows, self.max_rows
        if (low is not None and low < 0) or (high is not None and low is not None and high < low):
            raise ValueError(f"schema row count bounds [{low}, {high}] are not a valid range")

    @classmethod
    def infer(
        cls,
        df: pd.DataFrame,
        *,
        exclude: Sequence[str] = (),
        max_categories: int = MAX_CATEGORIES,
    ) -> Schema:
        """Infer a schema from a reference frame.

        Parameters:
            df: the reference frame.
            exclude: columns to leave out (an id, the target, ...); recorded as ``ignored``.
            max_categories: a categorical column with more distinct values, or an id-like one
                (at least 90 % distinct values in 50 rows or more), gets ``categories=None``.

        Example:
            >>> Schema.infer(pd.DataFrame({"x": [1, None]}))["x"]
            ColumnSpec(name='x', kind='numeric', nullable=True, min=1.0, max=1.0, categories=None)
        """
        skip = set(exclude)
        columns = tuple(
            _infer_column(str(name), df[name], max_categories)
            for name in df.columns
            if name not in skip
        )
        return cls(columns, tuple(str(name) for name in exclude))

    def typed_by(self, df: pd.DataFrame) -> Schema:
        """This schema with each untyped column that has values in ``df`` typed by them (its
        kind, nullable); itself when there is none.

        Example:
            >>> first = pd.DataFrame({"x": [1.0], "rating": [None]})
            >>> later = pd.DataFrame({"x": [2.0], "rating": ["PG"]})
            >>> spec = Schema.infer(first).typed_by(later)["rating"]
            >>> spec.kind, spec.typed
            ('categorical', True)
        """
        columns = tuple(
            replace(spec, kind=kind_of(df[spec.name]), nullable=True, typed=True)
            if not spec.typed and spec.name in df and df[spec.name].notna().any()
            else spec
            for spec in self.columns
        )
        return self if columns == self.columns else replace(self, columns=columns)

    @property
    def untyped(self) -> list[str]:
        """The columns whose kind no value has shown yet."""
        return [spec.name for spec in self.columns if not spec.typed]

    def to_dict(self) -> dict:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "ignored": list(self.ignored),
            "min_rows": self.min_rows,
            "max_rows": self.max_rows,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        columns = tuple(ColumnSpec.from_dict(c) for c in d["columns"])
        low, high = d.get("min_rows"), d.get("max_rows")
        return cls(
            columns,
            tuple(str(n) for n in d.get("ignored", ())),
            None if low is None else int(low),
            None if high is None else int(high),
        )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(f"column {name!r} is not in the schema (columns: {self.names})")

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.columns)

    def validate(
        self,
        df: pd.DataFrame,
        *,
        source: str = "batch",
        tz: str | None = None,
        date_format: str | None = None,
    ) -> list[Problem]:
        """Every reason ``df`` does not fit the schema; an empty list when it fits.

        Reported: an empty frame, missing columns, values that cannot be read as the column's
        kind (with the first bad row position and value) and naive timestamps when no ``tz`` is
        given. Nulls, out-of-range values, unseen categories and extra columns are not problems
        here: the quality checks measure them.

        Example:
            >>> schema = Schema.infer(pd.DataFrame({"x": [1.0]}))
            >>> schema.validate(pd.DataFrame({"x": ["abc"]}))[0].message
            "column 'x': row 0 has 'abc', expected a number"
        """
        return self._coerce(df, source, tz, date_format)[1]

    def conform(
        self,
        df: pd.DataFrame,
        *,
        source: str = "batch",
        required: bool = True,
        keep_unreadable: bool = False,
        tz: str | None = None,
        date_format: str | None = None,
    ) -> pd.DataFrame:
        """A copy of ``df`` with the schema's columns coerced; DataError lists every problem.

        Numeric columns become float64, categorical ones pandas strings (nulls kept), datetime
        ones UTC-aware datetime64. Naive timestamps are refused unless ``tz`` names their zone;
        strings are parsed as ISO 8601 unless ``date_format`` is given. Columns outside the
        schema are kept unchanged.

        Parameters:
            df: the batch.
            source: the name used in error messages (a file name, a batch id).
            required: when False, missing columns are allowed (not added).
            keep_unreadable: when True, a column with values that cannot be read as its kind
                (a re-typed column, ``"1014.7 hPa"``) is kept as text, unchanged, for the
                quality checks and the diagnosis to report; nothing sent is lost.
            tz: time zone of naive timestamps (e.g. ``"Australia/Sydney"``).
            date_format: a ``strftime`` format for datetime strings.

        Example:
            >>> schema = Schema.infer(pd.DataFrame({"x": [1.0]}))
            >>> schema.conform(pd.DataFrame({"y": [1]}), source="b.csv")
            Traceback (most recent call last):
            ...
            retrainer.errors.DataError: b.csv does not fit the schema:
              - column 'x' is missing (columns present: ['y'])
        """
        out, problems = self._coerce(df, source, tz, date_format)
        if not required:
            problems = [p for p in problems if p.kind != "missing_column"]
        if keep_unreadable:
            for p in problems:
                if p.kind == "bad_value":
                    out[p.column] = as_text(df[p.column])
            problems = [p for p in problems if p.kind != "bad_value"]
        if problems:
            lines = "\n".join(f"  - {p.message}" for p in problems)
            raise DataError(f"{source} does not fit the schema:\n{lines}")
        return out

    def _coerce(
        self, df: pd.DataFrame, source: str, tz: str | None, date_format: str | None
    ) -> tuple[pd.DataFrame, list[Problem]]:
        problems: list[Problem] = []
        if len(df) == 0:
            problems.append(Problem(None, "empty", f"{source} has no rows"))
        present = [str(c) for c in df.columns]
        out = df.copy()
        for spec in self.columns:
            if spec.name not in df.columns:
                message = f"column {spec.name!r} is missing (columns present: {present})"
                problems.append(Problem(spec.name, "missing_column", message))
                continue
            series = df[spec.name]
            if isinstance(series, pd.DataFrame):
                message = f"column {spec.name!r} appears more than once"
                problems.append(Problem(spec.name, "duplicate_column", message))
                continue
            if spec.kind == "numeric":
                coerced, bad = _to_numeric(series)
            elif spec.kind == "categorical":
                coerced, bad = as_text(series), None
            else:
                coerced, bad, problem = _to_datetime(series, spec.name, tz, date_format)
                if problem is not None:
                    problems.append(problem)
                    continue
            if bad is not None and bad.any():
                problems.append(_bad_value(spec, series, bad))
                continue
            out[spec.name] = coerced
        return out, problems


UNIT = re.compile(
    r"^\s*(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[^\d\s.+-][^\d]*?)\s*$"
)


def unit_suffixes(values: pd.Series) -> dict[str, int]:
    """How many of the text ``values`` are a number followed by each unit (``"1014.7 hPa"``).

    Example:
        >>> unit_suffixes(pd.Series(["1014.7 hPa", "1009 hPa", "98000Pa", "n/a", None]))
        {'hPa': 2, 'Pa': 1}
    """
    found = as_text(values.dropna()).str.extract(UNIT)["unit"].dropna()
    return {str(k): int(n) for k, n in found.value_counts().items()}


def strip_units(values: pd.Series, factors: dict[str, list[float]]) -> pd.Series:
    """Numbers from text with a unit suffix, each converted by its unit's ``[a, b]`` (``a*x+b``);
    plain numbers are kept, nulls stay null, anything else (another unit, a word) is left as it
    was so the schema still names it.

    Example:
        >>> strip_units(pd.Series(["1014.7 hPa", "101000 Pa", "1000", None, "bad"]),
        ...             {"hPa": [1.0, 0.0], "Pa": [0.01, 0.0]}).tolist()
        [1014.7, 1010.0, 1000.0, nan, 'bad']
    """
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values
    parts = as_text(values).str.extract(UNIT)
    number = pd.to_numeric(parts["number"], errors="coerce")
    a = parts["unit"].map(
        lambda u: factors.get(u, [np.nan, np.nan])[0] if isinstance(u, str) else np.nan
    )
    b = parts["unit"].map(
        lambda u: factors.get(u, [np.nan, np.nan])[1] if isinstance(u, str) else np.nan
    )
    converted = number * a.astype("float64") + b.astype("float64")
    plain = pd.to_numeric(values, errors="coerce")
    out = plain.where(plain.notna(), converted)
    if out.notna().sum() + values.isna().sum() == len(values):
        return out.astype("float64")
    return values.where(out.isna() | values.isna(), out).where(values.notna(), np.nan)


def _bad_value(spec: ColumnSpec, series: pd.Series, bad: np.ndarray) -> Problem:
    row = _first(bad)
    more = int(bad.sum()) - 1
    tail = f" (and {more} more bad rows)" if more else ""
    value = _show(series.iloc[row])
    message = f"column {spec.name!r}: row {row} has {value}, {_EXPECTED[spec.kind]}{tail}"
    return Problem(spec.name, "bad_value", message, row)


def _null_word(values: pd.Series) -> np.ndarray:
    return values.map(str).str.strip().str.lower().isin(NULL_WORDS).to_numpy()  # bytes too


def _to_numeric(series: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64"), None
    coerced = pd.to_numeric(series, errors="coerce")
    bad = (coerced.isna() & series.notna()).to_numpy(copy=True)
    if bad.any():
        bad[bad] = ~_null_word(series[bad])
    return coerced.astype("float64"), bad


def as_text(series: pd.Series) -> pd.Series:
    """The column as pandas strings, nulls kept; whole floats print as integers (``1.0`` -> ``1``).

    Example:
        >>> as_text(pd.Series([1.0, None, 3.0])).tolist()
        ['1', nan, '3']
        >>> as_text(pd.Series([b"ok", b"\\xff"])).str.len().tolist()  # not UTF-8: escaped
        [2, 4]
    """
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.dropna()
        if np.isfinite(values).all() and (values == np.round(values)).all():
            series = series.astype("Int64")
    if series.dtype == object:  # raw bytes may not be UTF-8: keep them readable, never fail
        series = series.map(
            lambda v: v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
        )
    return series.astype("str").where(series.notna(), np.nan)


def _to_datetime(
    series: pd.Series, name: str, tz: str | None, date_format: str | None
) -> tuple[pd.Series, np.ndarray | None, Problem | None]:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC"), None, None
    if pd.api.types.is_datetime64_dtype(dtype):
        if tz is None:
            return series, None, _naive(name, 0)
        return _localize(series, tz), None, None
    text = series.astype("str")
    notna = series.notna().to_numpy()
    aware = text.str.strip().str.contains(_OFFSET).fillna(False).to_numpy(dtype=bool) & notna
    naive = notna & ~aware
    if naive.any() and tz is None:
        return series, None, _naive(name, _first(naive))
    fmt = date_format or "ISO8601"
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us, UTC]")
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], format=fmt, errors="coerce", utc=True)
    if naive.any():
        parsed = pd.to_datetime(text[naive], format=fmt, errors="coerce")
        out[naive] = _localize(parsed, tz)
    bad = out.isna().to_numpy(copy=True) & notna
    if bad.any():
        bad[bad] = ~_null_word(series[bad])
    return out, bad, None


def _localize(series: pd.Series, tz: str) -> pd.Series:
    local = series.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return local.dt.tz_convert("UTC")


def _naive(name: str, row: int) -> Problem:
    message = (
        f"column {name!r}: row {row} has a timestamp without a time zone; "
        "give tz= (e.g. tz='UTC') or send aware timestamps"
    )
    return Problem(name, "naive_datetime", message, row)
