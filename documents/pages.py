"""What a document's pages share: who views it and the document, or off to log in first
(``send_to_login``, which the apps' pages use too); the URLs of its sandboxed frame, of the
frame's fresh tokens and of its ``autoload.js``; the query that says how a viewer sees it."""

from collections.abc import Callable, Mapping
from functools import wraps
from urllib.parse import urlencode
from uuid import UUID

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from accounts.users import acting_user
from documents import access
from documents.exceptions import DocumentNotFound, Forbidden
from documents.models import Document

DocumentView = Callable[[HttpRequest, access.Caller, Document], HttpResponse]
DocumentPage = Callable[[HttpRequest, UUID], HttpResponse]
View = Callable[..., HttpResponse]


class LoginFirst(Exception):
    """An anonymous visitor must log in before we say anything about this document."""


def viewed(request: HttpRequest, pk: UUID | str, need: access.RoleName = "read") -> tuple[access.Caller, Document]:
    """Who views, and the document a page shows, with ``document.role`` set to their role
    (``documents.access``: ``?public=true`` shows the public version, ``?key=`` is a secret
    link's key).

    Raises:
        LoginFirst: an anonymous visitor may not see it, and could once logged in.
        Http404: no such document, or one the caller may not know of.
        PermissionDenied: the caller may see it, but has less than ``need``.
    """
    caller = access.caller(request)
    try:
        return caller, access.resolve(caller, pk, need)
    except DocumentNotFound:
        if not caller.user.is_authenticated and request.GET.get("public") != "true":
            raise LoginFirst from None
        raise Http404("no such document") from None
    except Forbidden as e:
        raise PermissionDenied(e.detail) from None


def send_to_login(request: HttpRequest, back: str | None = None) -> HttpResponse:
    """Off to the login page, and back to ``back`` afterwards (``?next=``; by default, this page)."""
    return redirect_to_login(back or request.get_full_path())


def document_view(need: access.RoleName = "read", *, to_post: access.RoleName | None = None,
                  login: bool = True) -> Callable[[DocumentView], DocumentPage]:
    """A page of one document (URL argument ``pk``), called with who views it and the document
    (``viewed``) when they have the role ``need`` (``to_post``: the role a POST needs).

    An anonymous visitor who may not see it is sent to log in, and back (``?next=``); with
    ``login=False`` they get 404, like anyone who may not know of it. A viewer short of the role
    gets 403.
    """
    def decorate(view: DocumentView) -> DocumentPage:
        @wraps(view)
        def page(request: HttpRequest, pk: UUID) -> HttpResponse:
            role = to_post if to_post and request.method == "POST" else need
            try:
                caller, document = viewed(request, pk, role)
            except LoginFirst:
                if not login:
                    raise Http404("no such document") from None
                return send_to_login(request)
            return view(request, caller, document)
        return page
    return decorate


def signed_in(view: View) -> View:
    """A page of the acting user's own (``accounts.users.acting_user``): in multi-user mode an
    anonymous visitor logs in first, and comes back (``?next=``)."""
    @wraps(view)
    def page(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not acting_user(request).is_authenticated:
            return send_to_login(request)
        return view(request, *args, **kwargs)
    return page


def share_params(request: HttpRequest) -> dict[str, str]:
    """The part of the page's query that says how the viewer may see the document."""
    return {k: request.GET[k] for k in ("public", "key") if request.GET.get(k)}


def share_query(request: HttpRequest) -> str:
    """``share_params`` as a query string (``?...``), or "" when there are none."""
    return _query(share_params(request))


def frame_url(caller: access.Caller, document: Document, **params: object) -> str:
    """The sandboxed frame's URL for ``document`` (resolved for ``caller``), with a frame token
    signed for ``caller``; ``params`` add to its query (``version``: a history frame's)."""
    return reverse("documents:frame", args=[document.id]) + _query(
        {"frame_token": access.mint_frame_token(caller, document), **params})


def frame_token_url(document: Document, params: Mapping[str, str]) -> str:
    """Where the frame's page gets a fresh frame token, asking as ``params`` say
    (``share_params``, or an embed's)."""
    return reverse("documents:frame-token", args=[document.id]) + _query(params)


def autoload_url(document: Document, params: Mapping[str, str]) -> str:
    """The URL of ``document``'s ``autoload.js``, for another site's page (``params``: how it
    shows the document, an embed token's or ``public``)."""
    return reverse("documents:autoload", args=[document.id]) + _query(params)


def _query(params: Mapping[str, object]) -> str:
    return "?" + urlencode(params) if params else ""
