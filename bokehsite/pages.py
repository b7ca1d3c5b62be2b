"""What every page with forms shares: a POST names its ``action``, a table of handlers does it.

A handler takes the request (and whatever the page passes on, such as its document) and
returns ``None`` when the page should redirect back to itself, its outcome told by a message
(``django.contrib.messages``), or a context to render the page with once (a new secret, which
must not survive a reload). A domain error (``ApiError``) becomes an error message naming what
went wrong.
"""

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from bokehsite.errors import ApiError

Handler = Callable[..., dict[str, Any] | None]


class UnknownAction(ApiError):
    """A form that names no action of the page, or a value the action does not know."""

    def __init__(self) -> None:
        super().__init__("Unknown action.", field="action", code="unknown_action")


def attempt(request: HttpRequest, handler: Handler, *args: Any) -> dict[str, Any] | None:
    """``handler(request, *args)``; on a domain error, its message for the next page, and None."""
    try:
        return handler(request, *args)
    except ApiError as e:
        messages.error(request, e.detail)
        return None


def dispatch(request: HttpRequest, actions: Mapping[str, Handler], *args: Any,
             otherwise: Handler | None = None) -> dict[str, Any] | None:
    """Does the action the POSTed form names (``action``) with ``attempt``.

    Args:
        actions: the page's handlers by action name.
        args: passed on to the handler after the request.
        otherwise: what a form naming no action of ``actions`` does (by default, it says
            "Unknown action.").
    """
    handler = actions.get(request.POST.get("action", ""), otherwise or _unknown)
    return attempt(request, handler, *args)


def _unknown(request: HttpRequest, *args: Any) -> None:
    raise UnknownAction
