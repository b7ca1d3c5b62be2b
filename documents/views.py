"""HTML pages: the caller's document list, the plot page and its sandboxed frame, sharing,
history, and embeds in other sites' pages (``autoload.js``, their frames, the owner's embed
tokens). What they share is in ``documents.pages`` and ``bokehsite.pages``."""

import json
import re
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.templatetags.static import static
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_http_methods

from accounts.credentials import Credentials
from accounts.secrets import expires_in
from accounts.users import acting_user
from bokehsite import errors, pages, protocol
from bokehsite.errors import ApiError
from documents import access, embeds, services, thumbnails
from documents.exceptions import DocumentNotFound, InvalidFrameToken
from documents.frames import verify_frame_token
from documents.models import Document, Role, Visibility
from documents.pages import (LoginFirst, autoload_url, document_view, frame_token_url, frame_url, share_params,
                             share_query, signed_in, viewed)

# The sandbox: scripts run, but in an opaque origin, so they have neither this site's cookies
# nor its storage, and every request they make is cross-origin.
FRAME_CSP = "sandbox allow-scripts"
EXPORT_FORMATS = [("html", "HTML"), ("json", "JSON"), ("png", "PNG"), ("svg", "SVG")]


LIST_PAGE = 50


@signed_in
def document_list(request: HttpRequest) -> HttpResponse:
    """The caller's documents, searched by title, sorted and a page at a time; then those shared
    with them."""
    user = acting_user(request)
    search = request.GET.get("q", "").strip()[:200]
    order = request.GET.get("sort", "updated")
    if order.lstrip("-") not in services.LIST_ORDERS:
        order = "updated"
    owned = services.owned_documents(user)
    found = services.find_documents(owned, search=search, order=order).select_related("thumbnail").defer("thumbnail__png")
    page = Paginator(found, LIST_PAGE).get_page(request.GET.get("page"))
    documents = list(page.object_list)
    shared = list(services.shared_documents(user).select_related("owner", "thumbnail").defer("thumbnail__png"))
    for document in (*documents, *shared):
        document.thumbnail_url = thumbnails.url(document)
    thumbnails.refresh(documents + shared)
    context = {"documents": documents, "page": page, "search": search, "sort": order,
               "has_any": bool(search) or owned.exists(), "orders": services.LIST_ORDERS, "shared": shared}
    return render(request, "documents/list.html", context)


@require_GET
@document_view(login=False)
def document_thumbnail(request: HttpRequest, caller: access.Caller, document: Document) -> HttpResponse:
    """The document's thumbnail (PNG), for whoever may view the plot page; the placeholder (SVG)
    while there is none. ``?v=`` is the version the page expects: that one is cached."""
    picture = thumbnails.picture(document)
    if picture is None:
        response = HttpResponse(thumbnails.PLACEHOLDER, content_type="image/svg+xml")
        response["Cache-Control"] = "no-cache"
    else:
        png, version = picture
        response = HttpResponse(png, content_type="image/png")
        # Private: it was shown under this viewer's rights. A newer drawing comes under a new ?v=.
        fresh = request.GET.get("v") == str(version)
        response["Cache-Control"] = "private, max-age=86400" if fresh else "private, no-cache"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@document_view()
def document_page(request: HttpRequest, caller: access.Caller, document: Document) -> HttpResponse:
    """The plot page: the document in its sandboxed frame, live, with its title and exports."""
    context = {
        "document": document,
        "role": document.role,
        "frame_url": frame_url(caller, document),
        "token_url": frame_token_url(document, share_params(request)),
        "share_query": share_query(request),
        "export_formats": EXPORT_FORMATS,
    }
    return render(request, "documents/plot.html", context)


@require_GET
def document_frame_token(request: HttpRequest, pk) -> HttpResponse:
    """A fresh frame token for the page's frame, under the same rules as the page; with
    ``?embed=1``, for an embed's frame, under the embed's rules (no cookies; CORS); with
    ``?embed=session&key=``, for an app session's frame in another site's page."""
    if request.GET.get("embed") == "1":
        return _embed_frame_token(request, pk)
    if request.GET.get("embed") == "session":
        return _session_embed_frame_token(request, pk)
    try:
        caller, document = viewed(request, pk)
    except (LoginFirst, Http404):
        return errors.json_response(DocumentNotFound("no such document"))
    token = access.mint_frame_token(caller, document)
    return JsonResponse({"token": token, "role": verify_frame_token(token).role}, headers={"Cache-Control": "no-store"})


@xframe_options_exempt  # the frame says where it may be drawn itself (frame-ancestors)
@require_GET
def document_frame(request: HttpRequest, pk) -> HttpResponse:
    """The sandboxed frame that runs a document's code. It trusts only its frame token."""
    ancestors = None  # this site's own pages only (X-Frame-Options)
    try:
        if not (token := Credentials.from_request(request).frame_token):
            raise InvalidFrameToken("the frame needs a frame token")
        caller = access.caller(request, frame_token=True)
        if caller.grant.embed is not None:
            ancestors = embeds.frame_ancestors(caller.grant.embed)
        document = access.resolve(caller, pk)
        status, context = 200, {"document": document, "token": token,
                                "role": access.connection_role(document.role),
                                "doc_url": reverse("api:document-doc", args=[document.id]),
                                "ws_path": protocol.path(document.id)}
        if version := _version_in(request.GET):
            # A history frame shows one version and replays the log; it follows nothing live.
            context.update(history=True, ws_path="", doc_url=context["doc_url"] + f"?version={version}",
                           events_url=reverse("api:document-events", args=[document.id]))
    except ApiError as e:
        status, context = e.status_code, {"error": e.detail}
    response = _frame_page(request, context, status)
    response["Content-Security-Policy"] = f"{FRAME_CSP}; {ancestors}" if ancestors else FRAME_CSP
    if ancestors is None:
        response["X-Frame-Options"] = "SAMEORIGIN"
    response["Referrer-Policy"] = "no-referrer"  # the token is in this URL
    response["Cache-Control"] = "no-store"
    return response


def _frame_page(request: HttpRequest, context: dict, status: int) -> HttpResponse:
    """The frame's page: ours, or the document's own (an app's template) with our parts in it."""
    document = context.get("document")
    if document is None or not document.page or context.get("history"):
        return render(request, "documents/frame.html", context, status=status)
    context["page"] = True
    parts = {mark: render_to_string(template, context, request) for mark, template in (
        (protocol.PAGE_HEAD_MARK, "documents/_frame_head.html"), (protocol.PAGE_BODY_MARK, "documents/_frame_body.html"))}
    html = document.page
    for mark, part in parts.items():
        html = html.replace(mark, part, 1)
    return HttpResponse(html, status=status)


def _set_visibility(request: HttpRequest, document: Document) -> None:
    if request.POST.get("visibility") not in Visibility.values:
        raise pages.UnknownAction
    services.set_visibility(document, request.POST["visibility"])


def _regenerate_secret_link(request: HttpRequest, document: Document) -> None:
    services.regenerate_secret_link(document)
    messages.success(request, "New secret link made; the old one no longer works.")


def _share(request: HttpRequest, document: Document) -> None:
    if request.POST.get("role") not in Role.values:
        raise pages.UnknownAction
    services.share(document, request.POST.get("username", "").strip(), request.POST["role"])


def _unshare(request: HttpRequest, document: Document) -> None:
    services.unshare(document, request.POST.get("username", ""))


def _share_with_group(request: HttpRequest, document: Document) -> None:
    if request.POST.get("role") not in Role.values:
        raise pages.UnknownAction
    services.share_with_group(document, request.POST.get("group", "").strip(), request.POST["role"])


def _unshare_group(request: HttpRequest, document: Document) -> None:
    services.unshare_group(document, request.POST.get("group", ""))


SHARE_ACTIONS: dict[str, pages.Handler] = {
    "visibility": _set_visibility, "regenerate": _regenerate_secret_link, "share": _share, "unshare": _unshare,
    "share_group": _share_with_group, "unshare_group": _unshare_group,
}


@require_http_methods(["GET", "POST"])
@document_view("owner")
def share_page(request: HttpRequest, caller: access.Caller, document: Document) -> HttpResponse:
    """Visibility, the secret link and collaborators, for the owner."""
    if request.method == "POST":
        pages.dispatch(request, SHARE_ACTIONS, document)
        return redirect("documents:share", pk=document.pk)
    context = {
        "document": document,
        "collaborators": services.collaborators(document),
        "group_shares": services.group_shares(document),
        "public_url": request.build_absolute_uri(document.public_url()),
        "secret_url": request.build_absolute_uri(document.secret_url()) if document.secret_key else None,
        "visibilities": Visibility.choices,
        "roles": Role.choices,
    }
    return render(request, "documents/share.html", context)


# --- embeds in other sites' pages --------------------------------------------------------------

# The id of the element the snippet's script tag has, which the loader puts the plot after.
ELEMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# Seconds the host page waits for the frame to say it loaded before it says why it did not.
EMBED_LOAD_TIMEOUT = 20


def _page_origin(request: HttpRequest) -> str | None:
    """The origin of the page that asks, as its browser says it: ``Origin`` (sent with fetches),
    else ``Referer`` (sent, cut to the origin by default, with script loads)."""
    if origin := request.headers.get("Origin"):
        return None if origin == "null" else origin
    if referer := request.headers.get("Referer"):
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def _embedded(request: HttpRequest, pk) -> tuple[access.Caller, Document]:
    """Who embeds, and the document, for another site's page (``documents.access.embed_caller``).

    Raises:
        ApiError: an embed token that does not hold or does not list the page's origin, or a
            document the embed may not show (``DocumentNotFound``, with what to do).
    """
    caller = access.embed_caller(request)
    if isinstance(caller.embed, embeds.EmbedToken):
        embeds.check_origin(caller.embed, _page_origin(request))
    try:
        return caller, access.resolve(caller, pk)
    except DocumentNotFound:
        what = "it is not public" if caller.embed == "public" else "it is not this embed token's"
        raise DocumentNotFound(f"this plot cannot be shown: there is no such document, or {what} "
                               "(a private document needs an embed token from its owner)") from None


def _cors(response: HttpResponse) -> HttpResponse:
    # Answers to embeds depend on no cookie, so any page may read them; the origin was checked.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-store"
    return response


def _embed_frame_token(request: HttpRequest, pk) -> HttpResponse:
    try:
        caller, document = _embedded(request, pk)
    except ApiError as e:
        return _cors(errors.json_response(e))
    return _cors(JsonResponse({"token": access.mint_frame_token(caller, document), "role": "read"}))


def _session_embed_frame_token(request: HttpRequest, pk) -> HttpResponse:
    caller = access.session_embed_caller(request)
    try:
        document = access.resolve(caller, pk, "write")
    except ApiError as e:
        return _cors(errors.json_response(e))
    return _cors(JsonResponse({"token": access.mint_frame_token(caller, document), "role": "write"}))


@require_GET
def document_autoload(request: HttpRequest, pk) -> HttpResponse:
    """``autoload.js``: the script that shows the document in another site's page, in a sandboxed
    frame after the script's own tag, live. A refusal is a script too, which says why in the page
    (a browser runs no script answered with an error status, and would leave a blank box)."""
    element = request.GET.get("id", "")
    error: ApiError | None = None
    if element and not ELEMENT_ID.fullmatch(element):
        error = ApiError("id must be a letter followed by at most 63 letters, digits, - or _", field="id", code="invalid")
        element = ""
    config: dict = {"element": element or None, "timeout": EMBED_LOAD_TIMEOUT,
                    "server": request.build_absolute_uri("/")}
    if error is None:
        try:
            caller, document = _embedded(request, pk)
        except ApiError as e:
            error = e
    if error is not None:
        config["error"] = errors.envelope(error)
    else:
        query = {"embed": "1"}
        if isinstance(caller.embed, embeds.EmbedToken):
            query["embed_token"] = request.GET["embed_token"]
            config["origins"] = caller.embed.origins
        elif caller.embed == "public":
            query["public"] = "true"
        config.update({
            "title": document.title, "frame_url": request.build_absolute_uri(frame_url(caller, document)),
            "token_url": request.build_absolute_uri(frame_token_url(document, query)),
            "host_script": request.build_absolute_uri(static("bokehsite/frame-host.js")),
        })
    # "<" escaped, so that the script stays whole even if a page pastes it inline.
    response = render(request, "documents/autoload.js", {"config": json.dumps(config).replace("<", "\\u003c")},
                      content_type="text/javascript; charset=utf-8")
    if error is not None:
        response["X-Bokehsite-Error"] = error.code
    response["Cache-Control"] = "no-store"  # it holds a short-lived frame token
    response["Referrer-Policy"] = "no-referrer"
    return response


def _create_embed_token(request: HttpRequest, document: Document) -> dict:
    """Makes an embed token; its secret and snippet are shown this once."""
    try:
        days = int(request.POST.get("days") or 30)
    except ValueError:
        raise ApiError("days must be a whole number", field="days", code="invalid") from None
    if not 1 <= days <= embeds.MAX_LIFETIME.days:
        raise ApiError(f"days must be from 1 to {embeds.MAX_LIFETIME.days}", field="days", code="invalid")
    origins = request.POST.get("origins", "").replace(",", " ").split()
    token, secret = embeds.create(document, origins, expires=expires_in(days),
                                  name=request.POST.get("name", "").strip()[:100])
    src = request.build_absolute_uri(autoload_url(document, {"embed_token": secret, "id": f"bokehsite-{token.prefix}"}))
    return {"created": {"token": token, "secret": secret,
                        "snippet": f'<script src="{src}" id="bokehsite-{token.prefix}"></script>'}}


def _revoke_embed_token(request: HttpRequest, document: Document) -> None:
    if not (token := embeds.get(document, request.POST.get("token"))):
        raise pages.UnknownAction
    embeds.revoke(token)
    messages.success(request, "Embed token revoked: pages that show it stop now.")


EMBED_ACTIONS: dict[str, pages.Handler] = {"create": _create_embed_token, "revoke": _revoke_embed_token}


@require_http_methods(["GET", "POST"])
@document_view("owner")
def embeds_page(request: HttpRequest, caller: access.Caller, document: Document) -> HttpResponse:
    """The owner's embed tokens: make one (its snippet is shown once), list them, revoke them."""
    shown = None
    if request.method == "POST" and (shown := pages.dispatch(request, EMBED_ACTIONS, document)) is None:
        return redirect("documents:embeds", pk=document.pk)
    context = {"document": document, "tokens": embeds.tokens_of(document), "created": None,
               "public_snippet": None, **(shown or {})}
    if document.visibility == Visibility.PUBLIC:
        src = request.build_absolute_uri(autoload_url(document, {"public": "true"}))
        context["public_snippet"] = f'<script src="{src}"></script>'
    return render(request, "documents/embeds.html", context)

# --- history ---------------------------------------------------------------------------------

HISTORY_PAGE = 100


def _version_in(query) -> int | None:
    """The ``version`` a query or form names (None if none, or a value that is no version)."""
    value = query.get("version", "")
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else None


def _restore(request: HttpRequest, document: Document) -> None:
    version = _version_in(request.POST)
    if version is None or version > document.version:
        raise ApiError(f"no version {request.POST.get('version', '')!r} to restore", field="version")
    services.restore_version(document, version, author=acting_user(request))
    messages.success(request, f"Version {version} restored as version {document.version}.")


@require_http_methods(["GET", "POST"])
@document_view("read", to_post="write")
def history_page(request: HttpRequest, caller: access.Caller, document: Document) -> HttpResponse:
    """A document's versions, one of them shown in the sandboxed frame with a scrubber and
    replay; owners and writers restore one (POST ``version``; the form names no action)."""
    if request.method == "POST":
        pages.attempt(request, _restore, document)
        return redirect(reverse("documents:history", args=[document.pk]) + share_query(request))
    before = request.GET.get("before", "")
    page = services.version_history(document, before=int(before) if before.isdigit() else None, limit=HISTORY_PAGE)
    shown = document.version
    context = {
        "document": document, "role": document.role, "page": page, "shown": shown,
        "can_restore": access.allows(document.role, "write"),
        "frame_url": frame_url(caller, document, version=shown), "share_query": share_query(request),
        "export_formats": EXPORT_FORMATS, "token_url": frame_token_url(document, share_params(request)),
    }
    return render(request, "documents/history.html", context)
