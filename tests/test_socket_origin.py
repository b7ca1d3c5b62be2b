"""A browser's websocket gets a cookie identity only from this site's own origin: scheme, host and port."""

import pytest

from accounts.users import default_user
from bokehsite import protocol
from streaming.auth import origin_is_ours
from tests.helpers import open_socket, run, stored_line


def scope(origin: str | None, host: str = "localhost:8000", scheme: str = "ws", **headers: str) -> dict:
    pairs = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    pairs += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "websocket", "path": "/ws/", "scheme": scheme, "headers": pairs}


@pytest.mark.parametrize("origin, ours", [
    ("http://localhost:8000", True),
    ("http://localhost:9999", False),  # another server on the same host
    ("https://localhost:8000", False),  # the page is not what this connection is
    ("http://localhost", False),
    ("http://evil.example:8000", False),
    ("null", False),
])
def test_the_origin_must_be_the_connections_own(origin, ours):
    assert origin_is_ours(scope(origin)) is ours


def test_a_secure_socket_belongs_to_an_https_page():
    assert origin_is_ours(scope("https://localhost:8000", scheme="wss"))
    assert not origin_is_ours(scope("http://localhost:8000", scheme="wss"))


def test_a_host_the_site_does_not_serve_is_never_ours():
    assert not origin_is_ours(scope("http://evil.example", host="evil.example"))


def test_a_python_session_sends_no_origin():
    assert origin_is_ours(scope(None))


def test_csrf_trusted_origins_count(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://plots.example.org", "https://*.example.net"]
    assert origin_is_ours(scope("https://plots.example.org"))
    assert origin_is_ours(scope("https://team.example.net"))
    assert not origin_is_ours(scope("http://plots.example.org"))


def test_behind_a_tls_proxy_its_forwarded_proto_counts_only_when_trusted(settings):
    forwarded = scope("https://localhost:8000", x_forwarded_proto="https")
    assert not origin_is_ours(forwarded)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert origin_is_ours(forwarded)


@pytest.mark.django_db(transaction=True)
def test_a_page_on_another_port_of_the_same_host_does_not_get_defaultuser():
    document, _, _ = stored_line(default_user())

    async def scenario():
        ours = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")]
        socket, hello = await open_socket(protocol.path(document.id), ours)
        assert hello["type"] == "hello" and hello["role"] == "write"
        await socket.disconnect()
        other_port = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:9999")]
        socket, error = await open_socket(protocol.path(document.id), other_port)
        assert error["code"] == "not_found"
        await socket.disconnect()

    run(scenario)
