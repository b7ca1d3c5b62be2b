import os
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.servers import DaphneServer, database_url

IN_CI = os.environ.get("CI") == "true"


def _redis_database_of_this_worker() -> None:
    """Under pytest-xdist each worker has a test database of its own; give it a Redis database of
    its own too, so that one worker's groups (named after users' ids) never reach another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL")
    if not url or not worker.startswith("gw"):
        return
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings

    url = urlunsplit(urlsplit(url)._replace(path=f"/{int(worker[2:]) % 15 + 1}"))
    os.environ["REDIS_URL"] = url  # for the servers the tests start
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] = url


_redis_database_of_this_worker()

# What runs differently on PostgreSQL with Redis than on SQLite with the in-memory layer.
_STORAGE_FIXTURES = {"db", "transactional_db", "django_db_setup"}
_LAYER_WORDS = ("channel_layer", "WebsocketCommunicator", "broadcast", "REDIS_URL")
_layer_modules: dict[str, bool] = {}


def _uses_storage_or_layer(item: pytest.Item) -> bool:
    if item.get_closest_marker("embedded"):
        return False
    if any(item.get_closest_marker(name) for name in ("django_db", "daphne", "faults")):
        return True
    if _STORAGE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    path = str(item.path)
    if path not in _layer_modules:
        _layer_modules[path] = any(word in item.path.read_text() for word in _LAYER_WORDS)
    return _layer_modules[path]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The second pass of scripts/test.sh (``TEST_STORAGE_ONLY=1``, on PostgreSQL and Redis) runs
    only the tests that touch the database, the channel layer or a server process: the others
    ran in the first pass, and nothing they do depends on either."""
    if os.environ.get("TEST_STORAGE_ONLY") != "1":
        return
    kept = [item for item in items if _uses_storage_or_layer(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept

# Thumbnails are drawn only where a test asks for them (tests/test_thumbnails.py): elsewhere a
# background Chromium per stored document would slow every test and the servers they start.
os.environ.setdefault("BOKEHSITE_THUMBNAILS", "0")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True, scope="session")
def static_files_indexed_once():
    """WhiteNoise indexes every static file (17,000, BokehJS's among them: 0.2 s) each time a
    middleware chain is built, which Django's test client does for each client: done once here,
    for each static prefix and cache age, and the same index handed to every later chain."""
    from whitenoise.middleware import WhiteNoiseMiddleware

    indexes: dict[tuple, dict] = {}
    index_files = WhiteNoiseMiddleware.add_files_from_finders

    def add_files_from_finders(self) -> None:
        key = (self.static_prefix, self.max_age, self.allow_all_origins, self.charset)
        if key not in indexes:
            index_files(self)
            indexes[key] = dict(self.files)
        self.files.update(indexes[key])

    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders
    yield
    WhiteNoiseMiddleware.add_files_from_finders = index_files


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Keep the SQLite test database in a file, so that a Daphne child process can share it; under
    pytest-xdist each worker has its own (pytest-django's suffix)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test starts with empty throttle counters, and the client never touches the real home."""
    from django.core.cache import cache

    from django.conf import settings

    cache.clear()
    monkeypatch.setattr(settings, "BOKEHSITE_THUMBNAILS", False)
    monkeypatch.setenv("BOKEH_CONFIG_DIR", str(tmp_path / "bokeh-config"))
    monkeypatch.delenv("BOKEH_API_TOKEN", raising=False)
    yield
    cache.clear()


class SchemaOracle:
    """Checks an API answer against the OpenAPI schema (``/api/schema/``): its status must be one
    the operation documents, and its body must match what is documented for that status.

    Stricter than the published schema in one way: documented objects may have no members
    beyond those documented. Answers from paths or methods the schema has no operation for must
    be the error envelope (404 for an unknown path, 405 for a method an endpoint does not have).
    """

    def __init__(self):
        self._openapi = None

    @property
    def openapi(self):
        if self._openapi is None:
            import json

            from drf_spectacular.generators import SchemaGenerator
            from drf_spectacular.renderers import OpenApiJsonRenderer
            from openapi_core import OpenAPI

            schema = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
            for component in schema["components"]["schemas"].values():
                if "properties" in component:
                    component.setdefault("additionalProperties", False)
            self._openapi = OpenAPI.from_dict(schema)
        return self._openapi

    def check(self, response) -> None:
        from openapi_core.exceptions import OpenAPIError
        from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
        from openapi_core.testing import MockRequest, MockResponse

        request = response.wsgi_request
        if not request.path.startswith("/api/") or request.path.startswith(("/api/schema/", "/api/docs/")):
            return
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "text/html" in request.META.get("HTTP_ACCEPT", ""):
            return  # the browsable API, for people
        asked = MockRequest("http://testserver", request.method, request.path, args=request.GET)
        if response.streaming:
            content = b"".join(response.streaming_content)
            response.streaming_content = [content]  # left for the test to read
        else:
            content = response.content
        answer = MockResponse(content, response.status_code, dict(response.headers), content_type.split(";")[0])
        what = f"{request.method} {request.get_full_path()} answered {response.status_code} {content[:300]!r}"
        try:
            self.openapi.validate_response(asked, answer)
        except (PathNotFound, OperationNotFound) as e:
            expected = 404 if isinstance(e, PathNotFound) else 405
            body = response.json() if content_type == "application/json" else {}
            if response.status_code != expected or set(body) != {"error", "detail", "field"}:
                raise AssertionError(f"{what}: the schema has no such operation ({e})") from None
        except OpenAPIError as e:
            raise AssertionError(f"{what}, which the OpenAPI schema does not allow: {e.__cause__ or e}") from None


@pytest.fixture(scope="session", autouse=True)
def _api_answers_follow_the_schema():
    """The OpenAPI schema is a test oracle: every answer the in-process test clients (Django's
    and DRF's) get from the API is checked against it, whatever the test asserts itself."""
    from django.test.client import Client

    oracle = SchemaOracle()
    send = Client.request

    def request(self, **kwargs):
        response = send(self, **kwargs)
        oracle.check(response)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "request", request)
        yield


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def multi_user(settings):
    """Multi-user mode (the old ``bokeh-server -m``) for in-process tests."""
    settings.BOKEHSITE_MULTI_USER = True
    return settings


def make_user(username: str, *, password: str | None = None, **fields):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if password is None:
        return User.objects.create(username=username, **fields)  # no password hashing: fast
    return User.objects.create_user(username=username, password=password, **fields)


@pytest.fixture
def alice(db):
    """Owns documents."""
    return make_user("alice", password=PASSWORD)


@pytest.fixture
def bob(db):
    """A collaborator (tests give him a role)."""
    return make_user("bob", password=PASSWORD)


@pytest.fixture
def charlie(db):
    """Has no access to anyone else's documents."""
    return make_user("charlie", password=PASSWORD)


def token_client(user) -> APIClient:
    """An API client that authenticates as ``user`` with a fresh API token."""
    from accounts.tokens import create_token

    _, secret = create_token(user, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


@pytest.fixture(scope="session")
def live_server_url(django_db_setup):
    """A real Daphne process serving the test database (use with transactional tests)."""
    from django.conf import settings

    with DaphneServer(env={"DATABASE_URL": database_url(settings.DATABASES["default"])}) as server:
        yield server.url


LIVE_RATES = {"BOKEHSITE_LOGIN_RATE": "1000/min", "BOKEHSITE_REGISTER_RATE": "1000/min"}


@pytest.fixture(scope="session")
def multi_user_server_url(django_db_setup):
    """A real Daphne process in multi-user mode (``BOKEHSITE_MULTI_USER=1``) on the test database."""
    from django.conf import settings

    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_MULTI_USER": "1", **LIVE_RATES}
    with DaphneServer(env=env) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(monkeypatch_module):
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; scripts/setup.sh dev installs it")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it is open (so the
    # browser lives per module: later tests need the thread without one). The tests' own ORM
    # calls are still plain sequential code, so Django's async-safety guard does not apply.
    monkeypatch_module.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and failed requests in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    page.on("response", lambda r: page.problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    yield page
    context.close()


@pytest.fixture
def dataset_dir(settings, tmp_path):
    """Datasets in a folder of this test's, in chunks of 1 KiB."""
    settings.BOKEHSITE_DATASET_DIR = tmp_path / "datasets"
    settings.BOKEHSITE_DATASET_CHUNK_BYTES = 1024
    return settings.BOKEHSITE_DATASET_DIR
