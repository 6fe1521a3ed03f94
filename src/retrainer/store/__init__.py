"""The metadata store: SQLAlchemy tables on SQLite (default) or any database URL."""

from retrainer.store.db import Base, Store

__all__ = ["Base", "Store"]
