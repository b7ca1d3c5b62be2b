"""The apps' pages: the list, an app's page (each load a new session, shown in the sandboxed
frame every plot page has), its ``autoload.js`` for ``bokeh.embed.server_document``, its static
files, and saving a session as a plot."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_GET, require_POST
from django.views.static import serve

from accounts.users import acting_user, default_user, multi_user
from appserver import catalog, dispatch, sessions
from appserver.exceptions import NoSuchApp
from bokehsite import errors
from bokehsite.errors import ApiError
from documents import access
from documents.frames import SESSION_EMBED
from documents.models import Document
from documents.pages import frame_token_url, frame_url, send_to_login
from documents.views import EMBED_LOAD_TIMEOUT


@require_GET
def app_list(request: HttpRequest) -> HttpResponse:
    return render(request, "appserver/list.html", {"apps": _listed(request)})


def _listed(request: HttpRequest) -> list[dict]:
    viewer = acting_user(request)
    return [{"name": name, "open": catalog.may_open(name, viewer)} for name in catalog.apps()]


async def app_page(request: HttpRequest, name: str) -> HttpResponse:
    """A new session of the app ``name``, built by an app host, shown live."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    viewer = await sync_to_async(_acting_user_now)(request)
    try:
        started = await start_session(request, name, viewer)
    except NoSuchApp:
        raise Http404(f"no app called {name!r} here") from None
    except LoginNeeded:
        return send_to_login(request)
    except ApiError as e:
        return await sync_to_async(render)(request, "appserver/failed.html", {"app": name, "error": e},
                                           status=e.status_code)
    context = {"app": name, "document": started.document, "key": started.key,
               "frame_url": frame_url(started.caller, started.document),
               "token_url": frame_token_url(started.document, {"key": started.key}), "query": request.GET.urlencode()}
    response = await sync_to_async(render)(request, "appserver/app.html", context)
    response["Cache-Control"] = "no-store"  # each load is a session of its own
    # Same-origin, not no-referrer: the save form's POST needs its Origin for the CSRF check.
    response["Referrer-Policy"] = "same-origin"
    return response


def _acting_user_now(request: HttpRequest):
    """``acting_user``, loaded here: ``request.user`` is lazy, and loading it later, in the event
    loop, would read the login session from the database there (which Django refuses)."""
    viewer = acting_user(request)
    viewer.is_authenticated  # noqa: B018 (loads it)
    return viewer


class LoginNeeded(errors.Unauthorized):
    code = "login_required"


@dataclass(frozen=True)
class Started:
    """A session built and stored: who holds its key (``caller``), its document, the key."""

    caller: access.Caller
    document: Document
    key: str


async def start_session(request: HttpRequest, name: str, viewer, *, embed: str | None = None) -> Started:
    """A new session of the app ``name`` for ``viewer``, built by a host: what every page of an
    app (its own page, its ``autoload.js``) does first. ``embed``: the caller's embed, for a
    session shown in another site's page.

    Raises:
        NoSuchApp, LoginNeeded (``viewer`` may not open it), TooManySessions, NoAppHost, AppFailed
    """
    catalog.spec(name)
    if not catalog.may_open(name, viewer):
        raise LoginNeeded(f"the app {name} is open only to signed-in users: open it on this server's own page "
                          "and log in there")
    opened = await sync_to_async(sessions.open_session)(name, viewer, request)
    document_id = await dispatch.build(name, opened, _server_url(request))
    caller = access.Caller(viewer, key=opened.key, embed=embed)
    document = await sync_to_async(access.resolve)(caller, document_id, "write")
    return Started(caller, document, opened.key)


def _server_url(request: HttpRequest) -> str:
    """The address this process was reached at, for the app hosts it starts to connect back to."""
    host = request.META.get("SERVER_NAME", "127.0.0.1")
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{request.META.get('SERVER_PORT', '80')}/"


@require_POST
def save_session(request: HttpRequest, name: str) -> HttpResponse:
    """"Save as plot": the session's state now, as a document of the viewer's own."""
    viewer = acting_user(request)
    if not viewer.is_authenticated:
        # Back to the app's page, not to this POST's address.
        return send_to_login(request, request.META.get("HTTP_REFERER") or f"/apps/{name}/")
    caller = access.Caller(viewer, key=request.POST.get("key") or None)
    title = (request.POST.get("title") or "").strip()
    try:
        document = access.resolve(caller, request.POST.get("document", ""), "write")
        if not title:
            raise ApiError("give the plot a title", field="title", code="required")
        saved = sessions.save_as_plot(document, viewer, title)
    except ApiError as e:
        return render(request, "appserver/failed.html", {"app": name, "error": e}, status=e.status_code)
    messages.success(request, f"Saved the session as {saved.title!r}.")
    return redirect(saved.get_absolute_url())


@require_GET
def app_static(request: HttpRequest, name: str, path: str) -> FileResponse:
    """A directory app's ``static/`` files, at ``/apps/<name>/static/``."""
    try:
        static_dir = catalog.spec(name).static_dir
    except NoSuchApp:
        raise Http404("no such app") from None
    if static_dir is None:
        raise Http404("this app has no static files")
    return serve(request, path, document_root=str(static_dir))


# The id Bokeh's ``server_document`` gives the element the session goes after.
ELEMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


async def app_autoload(request: HttpRequest, name: str) -> HttpResponse:
    """``autoload.js`` for ``bokeh.embed.server_document(".../apps/<name>")``: each load a new
    session, shown in a sandboxed frame where Bokeh's script tag is, in a page of any origin.

    As for any embed, the visitor's cookies count for nothing here (browsers send none to another
    site's script anyway): in multi-user mode only public apps can be shown this way, and the
    script of any other says that it needs a login. The query's arguments but Bokeh's own
    (``bokeh-*``) are the session's ``request.arguments``.
    """
    if request.method != "GET":  # not HEAD either: each answer starts a session
        return HttpResponse(status=405, headers={"Allow": "GET"})
    element = request.GET.get("bokeh-autoload-element", "")
    config: dict = {"element": element if ELEMENT_ID.fullmatch(element) else None, "what": "App",
                    "timeout": EMBED_LOAD_TIMEOUT, "server": request.build_absolute_uri("/")}
    arguments = request.GET.copy()
    for argument in [a for a in arguments if a.startswith("bokeh-")]:
        del arguments[argument]
    request.GET = arguments  # what the session's request shows the app
    viewer = await sync_to_async(embed_viewer)()
    error: ApiError | None = None
    try:
        started = await start_session(request, name, viewer, embed=SESSION_EMBED)
    except ApiError as e:
        error = e
    if error is not None:
        config["error"] = errors.envelope(error)
    else:
        token_url = frame_token_url(started.document, {"embed": SESSION_EMBED, "key": started.key})
        config.update({
            "title": name, "frame_url": request.build_absolute_uri(frame_url(started.caller, started.document)),
            "token_url": request.build_absolute_uri(token_url),
            "host_script": request.build_absolute_uri(static("bokehsite/frame-host.js")),
        })
    # "<" escaped, so that the script stays whole even if a page pastes it inline.
    script = await sync_to_async(render)(request, "documents/autoload.js",
                                         {"config": json.dumps(config).replace("<", "\\u003c")},
                                         content_type="text/javascript; charset=utf-8")
    if error is not None:
        script["X-Bokehsite-Error"] = error.code
    # Bokeh's script tag fetches this (XMLHttpRequest, no credentials) from the embedding page.
    script["Access-Control-Allow-Origin"] = "*"
    script["Cache-Control"] = "no-store"  # each load is a session of its own
    script["Referrer-Policy"] = "no-referrer"
    return script


def embed_viewer():
    """Who another site's page is: nobody in multi-user mode, the one user in single-user mode."""
    return AnonymousUser() if multi_user() else default_user()

