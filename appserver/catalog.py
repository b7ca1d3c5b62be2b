"""The apps this server serves (``BOKEHSITE_APPS``), by name, found without running their code;
and who may open them."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from accounts.users import multi_user
from appserver.exceptions import NoSuchApp
from appserver.loading import AppSpec, app_specs


@cache
def apps() -> dict[str, AppSpec]:
    return {spec.name: spec for spec in app_specs(settings.BOKEHSITE_APPS)}


def spec(name: str) -> AppSpec:
    try:
        return apps()[name]
    except KeyError:
        raise NoSuchApp(f"no app called {name!r} here") from None


def is_public(name: str) -> bool:
    """Open to anyone: every app in single-user mode; in multi-user mode, those the operator
    listed (``BOKEHSITE_PUBLIC_APPS``)."""
    return not multi_user() or name in settings.BOKEHSITE_PUBLIC_APPS


def may_open(name: str, viewer: AbstractBaseUser | AnonymousUser) -> bool:
    return is_public(name) or viewer.is_authenticated
