"""Secrets that stand for someone: minted once, stored as a digest, looked up, expired, revoked.

Every kind (API tokens ``bks_``, embed tokens ``bke_``) works the same way, and a new kind is a
``SecretKind`` naming its visible prefix and its model:

- A secret is the kind's prefix and 43 URL-safe characters (256 random bits). It is shown once,
  when it is minted; the database never holds it.
- The row keeps the secret's first characters (``prefix``: the kind's prefix and 8 more, unique)
  to find it and to show in lists, and the SHA-256 digest of the whole secret (``digest``, hex),
  compared in constant time. A plain digest is enough because the secret is random and long:
  nobody can guess it from the digest, and unlike an HMAC keyed with ``SECRET_KEY`` it survives
  a key rotation.
- The row says when it ``expires`` (``None``: never) and when it was ``revoked`` (``None``: not).

So a model of a kind has at least these fields::

    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

Not a kind, on purpose: a document's secret-link key (``Document.secret_key``), an app session's
key among them (``appserver.sessions.open_session``). It is random too, but kept in clear,
because the sharing page shows the link again whenever its owner asks, which a digest could not;
``documents.access`` compares it in constant time, and a new link replaces it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from secrets import token_urlsafe
from typing import Generic, Protocol, TypeVar

from django.db import models
from django.utils import timezone

RANDOM_BYTES = 32
LOOKUP_EXTRA = 8  # characters after the kind's prefix that find the row
# Longer than any secret minted here: a longer one is refused before the database is asked.
MAX_SECRET_LENGTH = 100


class StoredSecret(Protocol):
    pk: object
    prefix: str
    digest: str
    expires: datetime | None
    revoked: datetime | None


Row = TypeVar("Row", bound=models.Model)


def digest(secret: str) -> str:
    """What is stored of ``secret``: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def expires_in(days: int | None) -> datetime | None:
    """The moment ``days`` days from now; ``None`` (never) for no number of days."""
    return timezone.now() + timedelta(days=days) if days else None


def has_expired(row: StoredSecret, now: datetime | None = None) -> bool:
    return row.expires is not None and row.expires <= (now or timezone.now())


def is_revoked(row: StoredSecret) -> bool:
    return row.revoked is not None


def is_active(row: StoredSecret, now: datetime | None = None) -> bool:
    """Neither revoked nor expired."""
    return not is_revoked(row) and not has_expired(row, now)


@dataclass(frozen=True)
class SecretKind(Generic[Row]):
    """One kind of secret: the visible ``prefix`` its secrets start with and the ``model`` that
    stores them (with the fields the module's docstring lists)."""

    prefix: str
    model: type[Row]

    @property
    def lookup_length(self) -> int:
        """How many of a secret's first characters the row keeps as its ``prefix``."""
        return len(self.prefix) + LOOKUP_EXTRA

    def mint(self, **fields: object) -> tuple[Row, str]:
        """A new row with ``fields``, and its secret.

        Returns:
            The stored row and its secret, which is stored nowhere: show it once.
        """
        while True:
            secret = self.prefix + token_urlsafe(RANDOM_BYTES)
            if not self.model._default_manager.filter(prefix=secret[:self.lookup_length]).exists():
                break
        row = self.model._default_manager.create(prefix=secret[:self.lookup_length], digest=digest(secret), **fields)
        return row, secret

    def find(self, secret: object, rows: models.QuerySet[Row] | None = None) -> Row | None:
        """The row whose secret ``secret`` is, revoked or expired alike; ``None`` for none, and for
        anything that is not a secret of this kind.

        Args:
            rows: where to look (for example with ``select_related``); default every row.
        """
        if not isinstance(secret, str) or not secret.startswith(self.prefix) \
                or not self.lookup_length < len(secret) <= MAX_SECRET_LENGTH:
            return None
        rows = self.model._default_manager.all() if rows is None else rows
        row = rows.filter(prefix=secret[:self.lookup_length]).first()
        if row is None or not hmac.compare_digest(row.digest, digest(secret)):
            return None
        return row

    def revoke(self, row: Row) -> bool:
        """Revoke ``row`` for good (its ``revoked`` is set); revoking it again changes nothing.

        Returns:
            Whether this call revoked it: callers announce the change of access only then.
        """
        if row.revoked is not None:
            return False
        row.revoked = timezone.now()
        return bool(self.model._default_manager.filter(pk=row.pk, revoked__isnull=True).update(revoked=row.revoked))
