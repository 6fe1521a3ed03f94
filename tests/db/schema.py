"""The store's schema as canonical text: ``tests/db/schema_<dialect>.sql`` holds HEAD's.

The text is read back from the database (SQLAlchemy's inspector), not from the models: every
table with its columns (sorted by name, so a column added by a migration compares equal to one
created with the table), types as the dialect names them, NOT NULL, server defaults, primary
key, unique constraints, foreign keys and indexes. ``tests/reliability/test_release_upgrade.py``
compares an upgraded release store and a fresh store with it.

Regenerate both files after adding a migration (and read the diff before committing):

    .venv/bin/python -m tests.db.schema
    bash -c 'eval "$(bash .ci/postgres.sh)"; .venv/bin/python -m tests.db.schema;
             bash .ci/postgres.sh stop'

Without ``RETRAINER_TEST_DATABASE_URL`` it writes ``schema_sqlite.sql``; with it,
``schema_postgresql.sql``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent


def schema_path(dialect: str) -> Path:
    """The committed schema file of a dialect (``sqlite`` or ``postgresql``)."""
    return HERE / f"schema_{dialect}.sql"


def _names(columns) -> str:
    return ", ".join(columns)


def schema_sql(engine: Engine) -> str:
    """The schema of the store behind ``engine``, as canonical CREATE TABLE statements."""
    inspector = sa.inspect(engine)
    dialect = engine.dialect
    out = [f"-- retrainer store schema ({dialect.name}); regenerate: python -m tests.db.schema"]
    for table in sorted(inspector.get_table_names()):
        lines = []
        for column in sorted(inspector.get_columns(table), key=lambda c: c["name"]):
            line = f"    {column['name']} {column['type'].compile(dialect=dialect)}"
            if not column["nullable"]:
                line += " NOT NULL"
            if column.get("default") is not None:
                line += f" DEFAULT {column['default']}"
            lines.append(line)
        primary = inspector.get_pk_constraint(table)["constrained_columns"]
        if primary:
            lines.append(f"    PRIMARY KEY ({_names(primary)})")
        for unique in sorted(
            _names(u["column_names"]) for u in inspector.get_unique_constraints(table)
        ):
            lines.append(f"    UNIQUE ({unique})")
        for fk in sorted(
            f"FOREIGN KEY ({_names(fk['constrained_columns'])}) REFERENCES "
            f"{fk['referred_table']} ({_names(fk['referred_columns'])})"
            for fk in inspector.get_foreign_keys(table)
        ):
            lines.append(f"    {fk}")
        out.append(f"CREATE TABLE {table} (\n" + ",\n".join(lines) + "\n);")
        for index in sorted(
            f"CREATE {'UNIQUE ' if ix['unique'] else ''}INDEX ON {table} "
            f"({_names(ix['column_names'])});"
            for ix in inspector.get_indexes(table)
            if not ix.get("duplicates_constraint")
        ):
            out.append(index)
    return "\n".join(out) + "\n"


def head_schema_sql(url: str) -> str:
    """The schema of a fresh store at ``url`` brought to HEAD."""
    from retrainer.store.db import Store

    store = Store(url)
    try:
        return schema_sql(store.engine)
    finally:
        store.dispose()


def search_path(url: str) -> str | None:
    """The PostgreSQL schema a test store URL uses (``options=-csearch_path=...``), if any."""
    options = sa.make_url(url).query.get("options", "")
    return options.removeprefix("-csearch_path=") if options.startswith("-csearch_path=") else None


def main() -> None:
    """Write the schema file of the configured dialect from a fresh store."""
    from tests.conftest import store_url

    with tempfile.TemporaryDirectory() as folder:
        url = store_url(folder)
        text = head_schema_sql(url)
        schema = search_path(url)
        if schema is not None:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with engine.begin() as connection:
                connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()
    dialect = sa.make_url(url).get_dialect().name
    schema_path(dialect).write_text(text)
    print(f"wrote {schema_path(dialect)}")


if __name__ == "__main__":
    main()
