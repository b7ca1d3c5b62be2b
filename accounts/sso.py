"""Accounts of single sign-on: which account an identity of the OpenID provider is, and its groups.

- An identity is its issuer and subject (``sub``). Its first sign-in creates an account named
  after the username claim (``BOKEHSITE_OIDC_USERNAME_CLAIM``), made valid and unique; the account
  has no usable password. Later sign-ins find the account by the identity, whatever the username
  claim says then.
- Each sign-in sets the account's Django groups from the groups claim
  (``BOKEHSITE_OIDC_GROUPS_CLAIM``): it joins every group the claim names, creating (and marking,
  ``SsoGroup``) those that do not exist, and leaves every marked group the claim no longer names.
  Groups an admin made are joined when the claim names them but never left by a sign-in, and
  memberships an admin gives stay.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import SsoGroup, SsoIdentity

USERNAME_LENGTH = 150
GROUP_NAME_LENGTH = 150
# What Django's username validator allows; anything else in a claim is dropped.
_NOT_IN_USERNAME = re.compile(r"[^\w.@+-]")


class SsoRefused(Exception):
    """The provider's claims cannot sign anyone in; the message says why."""


def username_from(claims: dict[str, Any]) -> str:
    """A valid, unused username for a new account: the username claim's, else the email's local
    part, else the subject's, with characters usernames cannot hold dropped and a number
    appended if it is taken."""
    wanted = claims.get(settings.BOKEHSITE_OIDC_USERNAME_CLAIM) or (claims.get("email") or "").split("@")[0] \
        or claims.get("sub") or ""
    base = _NOT_IN_USERNAME.sub("", str(wanted))[:USERNAME_LENGTH] or "user"
    User = get_user_model()
    name, n = base, 1
    while User.objects.filter(username__iexact=name).exists() or name == settings.BOKEHSITE_DEFAULT_USERNAME:
        n += 1
        suffix = f"-{n}"
        name = base[:USERNAME_LENGTH - len(suffix)] + suffix
    return name


def groups_from(claims: dict[str, Any]) -> list[str] | None:
    """The group names the groups claim lists; ``None`` when no groups claim is configured or the
    provider sent none (then the account's groups stay as they are)."""
    claim = settings.BOKEHSITE_OIDC_GROUPS_CLAIM
    if not claim or claim not in claims:
        return None
    value = claims[claim]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise SsoRefused(f"the {claim!r} claim must be a list of group names")
    names = sorted({name.strip()[:GROUP_NAME_LENGTH] for name in value if name.strip()})
    if len(names) > settings.BOKEHSITE_OIDC_MAX_GROUPS:
        raise SsoRefused(f"the {claim!r} claim names {len(names)} groups; this server takes at most "
                         f"{settings.BOKEHSITE_OIDC_MAX_GROUPS} (BOKEHSITE_OIDC_MAX_GROUPS)")
    return names


def sign_in(issuer: str, claims: dict[str, Any]) -> AbstractBaseUser:
    """The account of the identity ``claims["sub"]`` at ``issuer``, created on its first sign-in,
    with its groups set from the claims.

    Raises:
        SsoRefused: no subject, or a groups claim that is not a list of names.
    """
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SsoRefused("the provider sent no subject (sub)")
    groups = groups_from(claims)
    with transaction.atomic():
        identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        if identity is None:
            identity = _create_account(issuer, subject, claims)
        identity.last_login = timezone.now()
        identity.save(update_fields=["last_login"])
        user = identity.user
        if groups is not None:
            set_groups(user, groups)
    return user


def _create_account(issuer: str, subject: str, claims: dict[str, Any]) -> SsoIdentity:
    User = get_user_model()
    for _ in range(5):  # another first sign-in may take the same name at the same moment
        try:
            with transaction.atomic():
                user = User(username=username_from(claims), email=str(claims.get("email") or "")[:254],
                            first_name=str(claims.get("given_name") or "")[:150],
                            last_name=str(claims.get("family_name") or "")[:150])
                user.set_unusable_password()
                user.save()
                return SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        except IntegrityError:
            identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
            if identity is not None:
                return identity
    raise SsoRefused("could not create an account; try again")


def set_groups(user: AbstractBaseUser, names: list[str]) -> None:
    """Make ``user`` a member of exactly the groups ``names`` among the groups from SSO, and of
    every one of ``names``; groups that do not exist are created and marked as from SSO."""
    wanted = []
    for name in names:
        group, created = Group.objects.get_or_create(name=name)
        if created:
            SsoGroup.objects.create(group=group)
        wanted.append(group)
    user.groups.add(*wanted)
    stale = user.groups.filter(sso__isnull=False).exclude(name__in=names)
    user.groups.remove(*stale)
