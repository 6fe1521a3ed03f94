"""API tokens with a read or a write scope. Only a token's SHA-256 is stored; the token itself is
shown once, when it is created, and compared in constant time (``hmac.compare_digest``).

A token reads ``rtk_<prefix>_<secret>``: the prefix finds its row, the secret (256 random bits)
makes it unguessable. ``write`` includes ``read``.

Example:
    >>> from retrainer.store import Store
    >>> store = Store("sqlite://")
    >>> token, text = create_token(store, "ci", scope="write")
    >>> verify_token(store, text).name, verify_token(store, text + "x")
    ('ci', None)
    >>> revoke_token(store, token.prefix).revoked, verify_token(store, text)
    (True, None)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from retrainer.errors import ConfigError, NotFoundError
from retrainer.store import Store
from retrainer.store.tables import TokenRow

__all__ = [
    "SCOPES",
    "Token",
    "create_token",
    "has_tokens",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

SCOPES = ("read", "write")
_FORMAT = re.compile(r"rtk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_DUMMY = hashlib.sha256(b"no such token").hexdigest()


@dataclass(frozen=True)
class Token:
    """A stored API token (never its secret)."""

    id: int
    prefix: str
    name: str
    scope: str
    created_at: datetime
    revoked: bool

    def allows(self, scope: str) -> bool:
        """Whether this token may call an endpoint that needs ``scope``."""
        return not self.revoked and (self.scope == "write" or scope == "read")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked,
        }


def _token(row: TokenRow) -> Token:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Token(row.id, row.prefix, row.name, row.scope, created, row.revoked)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(store: Store, name: str, *, scope: str = "read") -> tuple[Token, str]:
    """Create a token; returns it and its text, which is not stored and cannot be shown again.

    Parameters:
        store: the project's metadata store.
        name: who or what uses it (shown in logs and as the actor of promotions).
        scope: ``read`` or ``write``.
    """
    if scope not in SCOPES:
        raise ConfigError([f"scope: must be read or write, not {scope!r}"], "token")
    if not name or len(name) > 100:
        raise ConfigError(["name: give a name of 1 to 100 characters"], "token")
    prefix = secrets.token_hex(6)
    text = f"rtk_{prefix}_{secrets.token_urlsafe(32)}"
    with store.session() as s:
        row = TokenRow(prefix=prefix, name=name, scope=scope, hash=_digest(text))
        s.add(row)
        s.flush()
        return _token(row), text


def verify_token(store: Store, text: str | None) -> Token | None:
    """The live token whose text this is, or None (also for revoked or malformed tokens)."""
    match = _FORMAT.fullmatch(text or "")
    with store.session() as s:
        row = s.scalar(select(TokenRow).where(TokenRow.prefix == match.group(1))) if match else None
        expected = row.hash if row is not None else _DUMMY
        if not hmac.compare_digest(expected, _digest(text or "")) or row is None:
            return None
        return None if row.revoked else _token(row)


def list_tokens(store: Store) -> list[Token]:
    """Every token (revoked ones too), oldest first."""
    with store.session() as s:
        return [_token(r) for r in s.scalars(select(TokenRow).order_by(TokenRow.id))]


def revoke_token(store: Store, prefix: str) -> Token:
    """Revoke the token with this prefix (the 12 hex digits after ``rtk_``) or name."""
    with store.session() as s:
        rows = s.scalars(
            select(TokenRow).where((TokenRow.prefix == prefix) | (TokenRow.name == prefix))
        ).all()
        if len(rows) != 1:
            known = ", ".join(f"{t.prefix} ({t.name})" for t in s.scalars(select(TokenRow)))
            what = "no token" if not rows else "more than one token"
            raise NotFoundError(f"{what} has prefix or name {prefix!r}; tokens: {known or 'none'}")
        rows[0].revoked = True
        return _token(rows[0])


def has_tokens(store: Store) -> bool:
    """Whether any live token exists."""
    with store.session() as s:
        return bool(
            s.scalar(select(func.count()).select_from(TokenRow).where(TokenRow.revoked.is_(False)))
        )
