"""The apps' pages: the list, an app's page (each load a new session, shown in the sandboxed
frame every plot page has), its ``autoload.js`` for ``bokeh.embed.server_document``, its static
files, and saving a session as a plot."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.static import serve

from accounts.users import acting_user
from appserver import catalog, dispatch, sessions
from appserver.exceptions import NoSuchApp
from bokehsite.errors import ApiError
from documents import access
from documents.pages import frame_token_url, frame_url


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
    try:
        catalog.spec(name)
    except NoSuchApp:
        raise Http404(f"no app called {name!r} here") from None
    viewer = await sync_to_async(acting_user)(request)
    if not catalog.may_open(name, viewer):
        return redirect_to_login(request.get_full_path())
    try:
        caller, document, key = await _new_session(request, name, viewer)
    except ApiError as e:
        return await sync_to_async(render)(request, "appserver/failed.html", {"app": name, "error": e},
                                           status=e.status_code)
    context = {"app": name, "document": document, "key": key, "frame_url": frame_url(caller, document),
               "token_url": frame_token_url(document, {"key": key}), "query": request.GET.urlencode()}
    response = await sync_to_async(render)(request, "appserver/app.html", context)
    response["Cache-Control"] = "no-store"  # each load is a session of its own
    response["Referrer-Policy"] = "no-referrer"
    return response


async def _new_session(request: HttpRequest, name: str, viewer):
    """Open a session, have a host build it; the caller that holds its key, its document, the key.

    Raises:
        TooManySessions, NoAppHost, AppFailed
    """
    opened = await sync_to_async(sessions.open_session)(name, viewer, request)
    document_id = await dispatch.build(name, opened, _server_url(request))
    caller = access.Caller(viewer, key=opened.key)
    document = await sync_to_async(access.resolve)(caller, document_id, "write")
    return caller, document, opened.key


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
        return redirect_to_login(request.META.get("HTTP_REFERER") or f"/apps/{name}/")
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


async def app_autoload(request: HttpRequest, name: str) -> HttpResponse:
    raise Http404  # replaced below

