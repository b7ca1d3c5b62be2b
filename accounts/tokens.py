"""API tokens: create, verify, revoke.

A secret looks like ``bks_`` followed by 43 URL-safe characters (256 random bits). The database
keeps its first 12 characters (``prefix``, unique, to find the row and to show in lists) and the
SHA-256 digest of the whole secret, compared with ``hmac.compare_digest``. A plain digest is
enough because the secret is random and long: nobody can guess it from the digest, and unlike
an HMAC keyed with ``SECRET_KEY`` it survives a key rotation.

``authenticate_token`` is the one lookup that every transport uses: DRF (``accounts.authentication``)
and, for Python sessions, the websocket. It also records the token's last use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.models import ApiToken
from accounts.signals import announce

SECRET_PREFIX = "bks_"
PREFIX_LENGTH = len(SECRET_PREFIX) + 8
# Writing last_used on every request would turn every API read into a write; a minute is precise
# enough to tell which tokens are in use.
LAST_USED_RESOLUTION = timedelta(seconds=60)
SCHEMES = ("token", "bearer")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user: AbstractBaseUser, name: str, *, expires: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for ``user``.

    Returns:
        The stored token and its secret. The secret is not stored anywhere: show it once.
    """
    while True:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        if not ApiToken.objects.filter(prefix=secret[:PREFIX_LENGTH]).exists():
            break
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:PREFIX_LENGTH], digest=_digest(secret), expires=expires
    )
    return token, secret


def authenticate_token(secret: str) -> ApiToken | None:
    """The active token whose secret this is, with its ``user`` loaded; ``None`` if there is none.

    Revoked and expired tokens, and tokens of inactive users, are not active. Records last use.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX) or len(secret) <= PREFIX_LENGTH:
        return None
    try:
        token = ApiToken.objects.select_related("user").get(prefix=secret[:PREFIX_LENGTH])
    except ApiToken.DoesNotExist:
        return None
    if not hmac.compare_digest(token.digest, _digest(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token


def user_for_token(secret: str) -> AbstractBaseUser | None:
    """The user an API token secret authenticates, or ``None``. Records the token's last use.

    Synchronous (it queries the database): from async code use
    ``channels.db.database_sync_to_async(user_for_token)``.
    """
    token = authenticate_token(secret)
    return token.user if token else None


def secret_from_authorization(header: str | None) -> str | None:
    """The secret in an ``Authorization: Token <secret>`` or ``Bearer <secret>`` header value."""
    parts = (header or "").split()
    if len(parts) == 2 and parts[0].lower() in SCHEMES:
        return parts[1]
    return None


def revoke_token(token: ApiToken) -> None:
    """Revoke a token for good; revoking it again changes nothing."""
    if token.revoked is None:
        token.revoked = timezone.now()
        if ApiToken.objects.filter(pk=token.pk, revoked__isnull=True).update(revoked=token.revoked):
            announce(users=[token.user_id])  # connections opened with it lose it now


def tokens_of(user: AbstractBaseUser):
    """Every token of ``user``, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user)


def get_token(user: AbstractBaseUser, token_id) -> ApiToken | None:
    try:
        return tokens_of(user).get(pk=token_id)
    except (ApiToken.DoesNotExist, ValueError, TypeError):
        return None
