"""API tokens: create, verify, revoke.

A secret looks like ``bks_`` followed by 43 URL-safe characters; it is minted, stored, found and
revoked as every secret is (``accounts.secrets``).

``authenticate_token`` is the one lookup that every transport uses: DRF (``accounts.authentication``)
and, for Python sessions, the websocket. It also records the token's last use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.models import ApiToken
from accounts.secrets import SecretKind
from accounts.signals import announce

API_TOKENS = SecretKind("bks_", ApiToken)
# Writing last_used on every request would turn every API read into a write; a minute is precise
# enough to tell which tokens are in use.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def create_token(user: AbstractBaseUser, name: str, *, expires: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for ``user``.

    Returns:
        The stored token and its secret. The secret is not stored anywhere: show it once.
    """
    return API_TOKENS.mint(user=user, name=name, expires=expires)


def authenticate_token(secret: str | None) -> ApiToken | None:
    """The active token whose secret this is, with its ``user`` loaded; ``None`` if there is none.

    Revoked and expired tokens, and tokens of inactive users, are not active. Records last use.
    """
    token = API_TOKENS.find(secret, ApiToken.objects.select_related("user"))
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token


def user_for_token(secret: str | None) -> AbstractBaseUser | None:
    """The user an API token secret authenticates, or ``None``. Records the token's last use.

    Synchronous (it queries the database): from async code use
    ``channels.db.database_sync_to_async(user_for_token)``.
    """
    token = authenticate_token(secret)
    return token.user if token else None


def revoke_token(token: ApiToken) -> None:
    """Revoke a token for good; revoking it again changes nothing."""
    if API_TOKENS.revoke(token):
        announce(users=[token.user_id])  # connections opened with it lose it now


def tokens_of(user: AbstractBaseUser):
    """Every token of ``user``, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user)


def get_token(user: AbstractBaseUser, token_id) -> ApiToken | None:
    try:
        return tokens_of(user).get(pk=token_id)
    except (ApiToken.DoesNotExist, ValueError, TypeError):
        return None
