"""The declarative base every table of the store is declared on (the bottom of the store).

Example:
    >>> from retrainer.store.base import Base
    >>> Base.metadata is not None
    True
"""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base shared by every table of the store."""
