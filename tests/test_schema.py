"""Schema inference, serialisation, validation and conforming, on real ELEC2 rows and edge cases."""

import json

import numpy as np
import pandas as pd
import pytest

from retrainer.data.schema import ColumnSpec, Problem, Schema, kind_of
from retrainer.errors import DataError
from tests import SHARED_DATA

ELEC2 = f"{SHARED_DATA}/elec2.csv"
NAMES = {
    "feat_1": "period",
    "feat_2": "nswprice",
    "feat_3": "nswdemand",
    "feat_4": "vicprice",
    "feat_5": "vicdemand",
    "feat_6": "transfer",
}


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    return pd.read_csv(ELEC2, nrows=2000).rename(columns=NAMES)


def test_infer_kinds():
    df = pd.DataFrame(
        {
            "price": [1.5, 2.5, None],
            "flag01": [0, 1, 1],
            "ok": [True, False, True],
            "region": ["NSW", "VIC", "NSW"],
            "when": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"], utc=True),
            "boxed": pd.Series([1, 2.5, None], dtype=object),
        }
    )
    schema = Schema.infer(df, exclude=["flag01"])
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "price": "numeric",
        "ok": "categorical",
        "region": "categorical",
        "when": "datetime",
        "boxed": "numeric",
    }
    assert schema.ignored == ("flag01",)
    assert schema["price"] == ColumnSpec("price", "numeric", True, 1.5, 2.5)
    assert schema["region"].categories == ("NSW", "VIC")
    assert schema["ok"].categories == ("False", "True")
    assert "flag01" not in schema and "price" in schema
    assert schema.names == ["price", "ok", "region", "when", "boxed"]
    with pytest.raises(KeyError, match="nope"):
        schema["nope"]


def test_few_integer_values_stay_numeric():
    assert kind_of(pd.Series([0, 1, 0, 1])) == "numeric"
    assert kind_of(pd.Series(["1", "2"])) == "categorical"


def test_id_like_and_many_categories_have_no_category_list():
    ids = pd.DataFrame({"id": [f"u{i}" for i in range(100)], "c": ["a", "b"] * 50})
    schema = Schema.infer(ids)
    assert schema["id"].categories is None
    assert schema["c"].categories == ("a", "b")
    assert Schema.infer(ids.head(10), max_categories=5)["id"].categories is None


def test_round_trip_through_json(elec2):
    schema = Schema.infer(elec2.assign(region="NSW"), exclude=["target"])
    again = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema


def test_duplicate_names_and_bad_kind_are_refused():
    with pytest.raises(ValueError, match="duplicated"):
        Schema((ColumnSpec("a", "numeric", True), ColumnSpec("a", "numeric", True)))
    with pytest.raises(ValueError, match="kind"):
        ColumnSpec("a", "text", True)


def test_conform_names_column_row_and_value(elec2):
    schema = Schema.infer(elec2)
    bad = elec2.astype({"nswprice": object})
    bad.loc[17, "nswprice"] = "abc"
    bad.loc[40, "nswprice"] = "x"
    with pytest.raises(DataError) as err:
        schema.conform(bad, source="week-3.csv")
    message = str(err.value)
    assert "week-3.csv" in message
    assert "column 'nswprice': row 17 has 'abc', expected a number (and 1 more bad rows)" in message


def test_conform_lists_every_problem(elec2):
    schema = Schema.infer(elec2)
    broken = elec2.drop(columns=["period", "transfer"]).head(0)
    problems = schema.validate(broken, source="b7")
    assert [(p.kind, p.column) for p in problems] == [
        ("empty", None),
        ("missing_column", "period"),
        ("missing_column", "transfer"),
    ]
    assert problems[0].message == "b7 has no rows"
    with pytest.raises(DataError, match="(?s)b7 has no rows.*'period' is missing.*'transfer'"):
        schema.conform(broken, source="b7")


def test_conform_coerces_and_keeps_extra_columns(elec2):
    schema = Schema.infer(elec2.assign(region="NSW"))
    batch = elec2.head(5).astype({"nswprice": str}).assign(region=[1, 2, None, 4, 5], note="hi")
    batch.loc[2, "nswprice"] = "NA"
    out = schema.conform(batch)
    assert out["nswprice"].dtype == np.float64
    assert np.isnan(out.loc[2, "nswprice"])
    assert out.loc[0, "nswprice"] == elec2.loc[0, "nswprice"]
    assert out["region"].tolist()[:2] == ["1", "2"] and pd.isna(out.loc[2, "region"])
    assert pd.api.types.is_string_dtype(out["region"])
    assert out["note"].tolist() == ["hi"] * 5
    assert batch["nswprice"].dtype != np.float64, "the input frame is left unchanged"


def test_conform_without_required_allows_missing_columns(elec2):
    schema = Schema.infer(elec2)
    out = schema.conform(elec2.drop(columns=["period"]).head(3), required=False)
    assert "period" not in out.columns


def test_naive_timestamps_are_refused_unless_a_zone_is_given():
    schema = Schema((ColumnSpec("at", "datetime", False),))
    naive = pd.DataFrame({"at": pd.to_datetime(["2021-03-01 10:00", "2021-03-01 11:00"])})
    problems = schema.validate(naive)
    assert [p.kind for p in problems] == ["naive_datetime"]
    assert "column 'at'" in problems[0].message and "tz=" in problems[0].message
    utc = schema.conform(naive, tz="UTC")["at"]
    assert str(utc.dtype).endswith("UTC]")
    offset = pd.DataFrame({"at": ["2021-03-01T12:00+02:00", "2021-03-01T13:00+02:00"]})
    sydney = pd.DataFrame({"at": ["2021-03-01 21:00", "2021-03-01 22:00"]})
    same = [
        utc,
        schema.conform(offset)["at"],
        schema.conform(sydney, tz="Australia/Sydney")["at"],
    ]
    for series in same[1:]:
        assert (series.to_numpy() == same[0].to_numpy()).all()


def test_ambiguous_date_needs_a_format():
    schema = Schema((ColumnSpec("day", "datetime", True),))
    frame = pd.DataFrame({"day": ["01-09-2018", None]})
    problems = schema.validate(frame, tz="UTC")
    assert problems == [
        Problem(
            "day",
            "bad_value",
            "column 'day': row 0 has '01-09-2018', expected an ISO 8601 timestamp "
            "(or give date_format=)",
            0,
        )
    ]
    day = schema.conform(frame, tz="UTC", date_format="%d-%m-%Y")["day"]
    assert day.iloc[0] == pd.Timestamp("2018-09-01", tz="UTC") and pd.isna(day.iloc[1])


def test_a_column_with_no_value_is_untyped_until_values_come_and_stays_so_stored():
    first = pd.DataFrame({"x": [1.0, 2.0], "code": [np.nan, np.nan]})  # as CSV reads it
    schema = Schema.infer(first)
    assert schema.untyped == ["code"]
    stored = Schema.from_dict(schema.to_dict())
    assert stored.untyped == ["code"] and stored == schema
    assert stored.typed_by(pd.DataFrame({"x": [3.0], "code": [np.nan]})) is stored
    typed = stored.typed_by(pd.DataFrame({"x": [3.0, 4.0], "code": ["PG", None]}))
    assert (typed["code"].kind, typed.untyped, typed["x"]) == ("categorical", [], schema["x"])
    assert Schema.from_dict({"columns": [{"name": "x", "kind": "numeric"}]})["x"].typed
