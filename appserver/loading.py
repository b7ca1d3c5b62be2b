"""Bokeh apps as ``bokeh serve`` takes them: a ``.py`` script, a ``.ipynb`` notebook, or a
directory with ``main.py`` or ``main.ipynb`` (and optionally ``templates/index.html``, ``static/``,
``theme.yaml``, ``app_hooks.py`` or ``server_lifecycle.py``).

``app_specs`` looks at the paths only, so the web tier can route and serve static files without
running app code; ``build_application`` and ``check`` run it, and belong in an app host process or
a throwaway checking process (``python -m appserver.check``). No Django here.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import traceback
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from bokeh.application import Application
from bokeh.application.handlers.document_lifecycle import DocumentLifecycleHandler
from bokeh.command.util import build_single_handler_application
from bokeh.document import Document
from bokeh.io.doc import patch_curdoc
from bokeh.server.contexts import ApplicationContext, BokehSessionContext, _RequestProxy
from bokeh.util.token import generate_session_id

SUFFIXES = (".py", ".ipynb")
# A name is one segment of /apps/<name>/: nothing a URL would need to escape or could misread.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# What a directory app's change scan skips: caches Python writes itself as the app runs.
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git"}


class AppLoadError(Exception):
    """An app that cannot be served: the message names the file and the error; ``detail`` holds
    the traceback when there is one."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class AppSpec:
    """What the web tier needs to know of an app, found without running any of its code."""

    name: str
    path: Path  # absolute: the script, the notebook or the directory
    static_dir: Path | None = None  # a directory app's static/, served at /apps/<name>/static/
    template: Path | None = None  # a directory app's templates/index.html


def _spec(given: str | Path) -> AppSpec:
    # Bokeh's own rule (abspath, not resolve): a symlinked app keeps the name it was given by.
    path = Path(os.path.abspath(os.path.expanduser(given)))
    if not path.exists():
        raise AppLoadError(f"{path}: no such file or directory")
    if path.is_dir():
        if not (path / "main.py").is_file() and not (path / "main.ipynb").is_file():
            raise AppLoadError(f"{path}: a directory app needs a main.py or a main.ipynb")
        if (path / "app_hooks.py").exists() and (path / "server_lifecycle.py").exists():
            raise AppLoadError(f"{path}: a directory app has app_hooks.py or server_lifecycle.py, not both")
        static = path / "static"
        template = path / "templates" / "index.html"
        spec = AppSpec(path.name, path, static if static.is_dir() else None, template if template.is_file() else None)
    elif path.suffix in SUFFIXES:
        spec = AppSpec(path.stem, path)
    else:
        raise AppLoadError(f"{path}: an app is a .py script, a .ipynb notebook or a directory with main.py")
    if not NAME.fullmatch(spec.name):
        raise AppLoadError(f"{path}: the app's name {spec.name!r} must be letters, digits, '_', '-' and '.'")
    return spec


def app_specs(paths: Sequence[str | Path]) -> list[AppSpec]:
    """The apps at ``paths``, in order, each named after its file stem or directory.

    Raises:
        AppLoadError: a path is missing or not an app, or two apps have one name.
    """
    specs: dict[str, AppSpec] = {}
    for given in paths:
        spec = _spec(given)
        if (other := specs.get(spec.name)) is not None:
            raise AppLoadError(f"{spec.path}: another app is also called {spec.name!r} ({other.path}); "
                               f"each is served at /apps/<name>/, so names must differ")
        specs[spec.name] = spec
    return list(specs.values())


EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: .*)?")


def _load_error(spec: AppSpec, error: str, detail: str | None) -> AppLoadError:
    """An AppLoadError from what Bokeh's handlers keep: ``error`` (the message, then where it
    happened) and ``detail`` (the traceback, whose last line has the exception's type)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    exception = next((line for line in reversed((detail or "").strip().splitlines())
                      if EXCEPTION_LINE.fullmatch(line) and not line.startswith("Traceback")), "")
    if exception and lines and lines[0] in exception:
        lines = lines[1:]  # the message again
    where = " ".join(lines)
    if not exception:
        return AppLoadError(f"{spec.path}: {where or 'failed'}", detail)
    return AppLoadError(f"{spec.path}: {exception}" + (f" ({where})" if where else ""), detail)


def build_application(spec: AppSpec) -> Application:
    """Bokeh's ``Application`` for the app, built as ``bokeh serve`` builds it. This reads the
    app's files and compiles its code (a directory app's hooks module runs), but runs no session.

    Raises:
        AppLoadError: the code does not compile, the notebook does not convert, a hook fails.
    """
    try:
        application = build_single_handler_application(str(spec.path), argv=[])
    except RuntimeError as e:
        # Bokeh's "Error loading <path>:\n\n<handler.error>\n<handler.error_detail>"
        error, _, detail = str(e).split(":\n\n", 1)[-1].partition("\nTraceback (most recent call last):")
        raise _load_error(spec, error, detail or None) from None
    except Exception as e:  # a notebook that is not JSON, a theme.yaml that is not YAML, ...
        raise AppLoadError(f"{spec.path}: {type(e).__name__}: {e}", traceback.format_exc()) from None
    _raise_if_failed(spec, application)
    # As bokeh serve does (BokehTornado): what runs a document's own on_session_destroyed callbacks.
    application.add(DocumentLifecycleHandler())
    return application


def _raise_if_failed(spec: AppSpec, application: Application) -> None:
    for handler in application.handlers:
        if handler.failed:
            raise _load_error(spec, handler.error or "", handler.error_detail)


def check(spec: AppSpec) -> None:
    """Run the app once, as a new session with no request arguments would, into a throwaway
    Document: the server's load hook, the session hooks, and the app's code.

    Call it in a process of its own (``python -m appserver.check``): it runs the app's code, and
    ``asyncio.run`` for the session hooks, so never from a running event loop.

    Raises:
        AppLoadError: naming the file and the error, when any of it fails.
    """
    application = build_application(spec)
    context = ApplicationContext(application, url=f"/apps/{spec.name}")
    doc = Document()
    session = BokehSessionContext(generate_session_id(), context.server_context, doc)
    # What an app reads of its request (curdoc().session_context.request.arguments): all empty.
    request = SimpleNamespace(path=f"/apps/{spec.name}/", uri=f"/apps/{spec.name}/", query="", method="GET")
    session._request = _RequestProxy(request, arguments={}, cookies={}, headers={})  # type: ignore[arg-type]
    doc._session_context = weakref.ref(session)
    try:
        application.on_server_loaded(context.server_context)
        asyncio.run(application.on_session_created(session))
        with patch_curdoc(doc):
            application.initialize_document(doc)
        _raise_if_failed(spec, application)
        asyncio.run(application.on_session_destroyed(session))
        application.on_server_unloaded(context.server_context)
    except AppLoadError:
        raise
    except (Exception, SystemExit) as e:  # a hook that raised or exited, a document that does not validate
        line = traceback.extract_tb(e.__traceback__)[-1]
        raise AppLoadError(f"{spec.path}: {type(e).__name__}: {e} ({Path(line.filename).name}, line {line.lineno})",
                           traceback.format_exc()) from None


def _stamp(spec: AppSpec) -> tuple[tuple[str, int, int], ...]:
    """What changes when any file of the app changes: each file's name, mtime and size."""
    def entry(path: Path) -> tuple[str, int, int]:
        stat = path.stat()
        return str(path), stat.st_mtime_ns, stat.st_size

    if not spec.path.is_dir():
        return (entry(spec.path),)
    files: list[Path] = []
    for root, dirs, names in os.walk(spec.path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        files.extend(Path(root) / name for name in sorted(names))
    found = []
    for path in files:
        try:
            found.append(entry(path))
        except FileNotFoundError:  # removed while scanning: the next scan sees the change
            continue
    return tuple(found)


class Registry:
    """The apps of a server, by name. ``application(name)`` builds an app's ``Application`` the
    first time it is asked for and keeps it; in dev mode it builds it again whenever a file of the
    app changed since (so new sessions run the new code; running sessions keep theirs)."""

    def __init__(self, specs: Iterable[AppSpec], *, dev: bool = False) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self.dev = dev
        self._built: dict[str, tuple[Application, tuple[tuple[str, int, int], ...] | None]] = {}
        self._lock = threading.Lock()  # sessions start on several threads; build each app once

    @property
    def specs(self) -> list[AppSpec]:
        return list(self._specs.values())

    def spec(self, name: str) -> AppSpec:
        """Raises KeyError for an unknown name."""
        return self._specs[name]

    def application(self, name: str) -> Application:
        """Raises KeyError for an unknown name, AppLoadError when the app does not build."""
        spec = self._specs[name]
        with self._lock:
            # Scanned before building: a change made during the build is seen by the next call.
            stamp = _stamp(spec) if self.dev else None
            built = self._built.get(name)
            if built is not None and built[1] == stamp:
                return built[0]
            application = build_application(spec)
            self._built[name] = (application, stamp)
            return application
