"""Who a request acts as.

In single-user mode (the default, as in the original bokeh-server) every request acts as one
user, ``defaultuser``, created on first use. In multi-user mode a request acts as whoever it
authenticated as. Pages, the API and (later) websockets all ask this module.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest


def multi_user() -> bool:
    return settings.BOKEHSITE_MULTI_USER


def default_user() -> AbstractBaseUser:
    """The single-user mode user; it has no usable password, so nobody can log in as it."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=settings.BOKEHSITE_DEFAULT_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def acting_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    """The user a page request acts as."""
    if not multi_user():
        return default_user()
    return request.user
