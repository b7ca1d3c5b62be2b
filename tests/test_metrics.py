"""GET /metrics: Prometheus's text format, for a scraper with the bearer token or from an allowed
address; the figures follow what the process does."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from accounts.users import default_user
from bokehsite import metrics, protocol
from documents import services
from tests.helpers import append_frame, open_socket, receive, run, stored_line

TOKEN = "s3cret-scrape-token"


@pytest.fixture
def with_token(settings):
    settings.BOKEHSITE_METRICS_TOKEN = TOKEN
    return settings


def scrape(client=None, **headers) -> str:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def figure(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` with these labels (each of this process's)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                assert sample.labels["process"] == metrics.PROCESS
                total += sample.value
    return total


@pytest.mark.django_db(transaction=True)
def test_without_a_token_or_an_allow_list_there_is_no_endpoint(client, settings):
    settings.BOKEHSITE_METRICS_TOKEN, settings.BOKEHSITE_METRICS_ALLOW = "", []
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_token_is_needed_and_checked(client, with_token):
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["field"] == "Authorization"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer  {TOKEN} ").status_code == 200
    text = scrape(client)
    assert 'bokehsite_healthy{check="database"' in text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"bokehsite_connections", "bokehsite_app_sessions", "bokehsite_changes_stored",
            "bokehsite_change_store_seconds", "bokehsite_broadcast_lag_seconds", "bokehsite_views_served",
            "bokehsite_view_seconds", "bokehsite_thumbnail_queue", "bokehsite_errors", "bokehsite_healthy"} <= names
    assert all(name.startswith("bokehsite_") for name in names)
    assert figure(text, "bokehsite_healthy", check="database") == 1


@pytest.mark.django_db(transaction=True)
def test_an_allowed_address_needs_no_token(client, settings):
    settings.BOKEHSITE_METRICS_ALLOW = ["10.1.0.0/16", "192.0.2.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="10.2.0.1")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    # X-Forwarded-For counts only behind a trusted proxy, as for the login limits.
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="10.2.0.1").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_stored_change_and_an_error_answer_are_counted(client, with_token):
    document, doc, source = stored_line(default_user())
    before = scrape(client)
    from tests.helpers import stream_patch

    patch, buffers = stream_patch(doc, source, [6.0], [1.0])
    services.apply_patch(document, patch, buffers)
    assert client.get("/api/documents/not-a-document/").status_code == 404
    after = scrape(client)
    assert figure(after, "bokehsite_changes_stored_total") == figure(before, "bokehsite_changes_stored_total") + 1
    assert (figure(after, "bokehsite_change_store_seconds_count")
            == figure(before, "bokehsite_change_store_seconds_count") + 1)
    assert (figure(after, "bokehsite_errors_total", code="not_found")
            >= figure(before, "bokehsite_errors_total", code="not_found") + 1)


@pytest.mark.django_db(transaction=True)
def test_open_websockets_and_relayed_changes_show(with_token):
    document, doc, source = stored_line(default_user())
    get = sync_to_async(scrape)

    async def scenario():
        before = await get()
        viewer, _ = await open_socket(protocol.path(document.id), [(b"host", b"localhost"), (b"origin", b"http://localhost")])
        script, _ = await open_socket(protocol.path(document.id))  # a Python session sends no Origin
        opened = await get()
        assert figure(opened, "bokehsite_connections", kind="viewer") == figure(before, "bokehsite_connections", kind="viewer") + 1
        assert figure(opened, "bokehsite_connections", kind="script") == figure(before, "bokehsite_connections", kind="script") + 1

        await viewer.send_json_to({"type": "sync", "version": 1})
        await viewer.send_json_to({"type": "ping", "id": 1})
        assert await receive(viewer) == {"type": "pong", "id": 1}  # synced: it follows the changes
        await script.send_to(bytes_data=append_frame(doc, source, [6], [1], request_id=1))
        assert (await receive(script))["type"] == "ack"
        assert (await receive(viewer))["type"] == "patches"
        relayed = await get()
        assert (figure(relayed, "bokehsite_broadcast_lag_seconds_count")
                == figure(before, "bokehsite_broadcast_lag_seconds_count") + 1)
        assert figure(relayed, "bokehsite_changes_stored_total") == figure(before, "bokehsite_changes_stored_total") + 1

        await viewer.disconnect()
        await script.disconnect()
        closed = await get()
        assert figure(closed, "bokehsite_connections", kind="viewer") == figure(before, "bokehsite_connections", kind="viewer")

    run(scenario)


def test_a_malformed_allow_list_stops_the_server_with_its_name():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], capture_output=True, text=True,
                            env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "bokehsite.settings",
                                 "BOKEHSITE_METRICS_ALLOW": "10.0.0.0/8,not-a-network"}, timeout=60)
    assert result.returncode != 0 and "BOKEHSITE_METRICS_ALLOW" in result.stderr and "not-a-network" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_views_served_and_websocket_errors_are_counted(api, dataset_dir, with_token):
    from tests.test_dataset_views import backed_document, line_columns, next_frame, stored_dataset, view

    dataset = stored_dataset(api, "walk", line_columns(2000), require_sorted_x=True)
    document, source_id = backed_document(default_user(), dataset)
    get = sync_to_async(scrape)

    async def scenario():
        before = await get()
        socket, _ = await open_socket(protocol.path(document.id), [(b"host", b"localhost"), (b"origin", b"http://localhost")])
        await socket.send_json_to(view(1, source_id, 0, 2000))
        message, _ = await next_frame(socket)
        assert message["type"] == "view_data"
        await socket.send_json_to(view(2, "p99999", 0, 2000))
        assert (await receive(socket))["code"] == "unknown_source"
        after = await get()
        await socket.disconnect()
        assert figure(after, "bokehsite_views_served_total") == figure(before, "bokehsite_views_served_total") + 1
        assert figure(after, "bokehsite_view_seconds_count") == figure(before, "bokehsite_view_seconds_count") + 1
        assert (figure(after, "bokehsite_errors_total", code="unknown_source")
                == figure(before, "bokehsite_errors_total", code="unknown_source") + 1)

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_another_sites_embed_counts_as_an_embed(alice, multi_user, with_token):
    from documents import embeds
    from tests.test_embed_read_only import HOST, embed_frame_token

    document, _, _ = stored_line(alice)
    _, secret = embeds.create(document, [HOST])
    frame_token = embed_frame_token(Client(), document, secret)
    get = sync_to_async(scrape)

    async def scenario():
        before = await get()
        socket, hello = await open_socket(f"{protocol.path(document.id)}?frame_token={frame_token}",
                                          [(b"origin", b"null"), (b"host", b"testserver")])
        assert (hello["type"], hello["role"]) == ("hello", "read")
        opened = await get()
        await socket.disconnect()
        assert figure(opened, "bokehsite_connections", kind="embed") == figure(before, "bokehsite_connections", kind="embed") + 1
        assert figure(opened, "bokehsite_connections", kind="viewer") == figure(before, "bokehsite_connections", kind="viewer")

    run(scenario)
