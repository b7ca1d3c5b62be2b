"""Who a request acts as.

In single-user mode (the default, as in the original bokeh-server) every request acts as one
user, ``defaultuser``, created on first use. In multi-user mode a request acts as whoever it
authenticated as. Pages, the API and websockets all ask this module.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from accounts.exceptions import RegistrationClosed, UsernameTaken


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


def local_login() -> bool:
    """People may log in with a password; off, only with single sign-on (``accounts.oidc``)."""
    return settings.BOKEHSITE_LOCAL_LOGIN


def registration_open() -> bool:
    """People may create accounts with a password (never when local passwords are off)."""
    return settings.BOKEHSITE_ALLOW_REGISTRATION and local_login()


def register_user(username: str, password: str) -> AbstractBaseUser:
    """Create an account. The caller has already applied Django's password validators.

    Raises:
        RegistrationClosed: self-registration is turned off (admins create users instead).
        UsernameTaken: someone has this username.
    """
    if not registration_open():
        raise RegistrationClosed("registration is closed on this server; ask an administrator for an account")
    User = get_user_model()
    taken = UsernameTaken(f"the username {username!r} is taken", field="username")
    if User.objects.filter(username__iexact=username).exists():
        raise taken
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError:
        raise taken from None
