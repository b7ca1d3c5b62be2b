"""/healthz: 200 while the database and the channel layer answer, 503 naming what failed."""

import os

import pytest

from tests.conftest import IN_CI
from tests.servers import DaphneServer, free_port

pytestmark = pytest.mark.django_db(transaction=True)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_layer(url: str) -> dict:
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}}


@pytest.fixture
def redis_url():
    from scripts.services import redis_answers

    if not redis_answers(REDIS_URL):
        if IN_CI:
            pytest.fail(f"Redis does not answer at {REDIS_URL}")
        pytest.skip(f"Redis does not answer at {REDIS_URL}")
    return REDIS_URL


def test_healthy_on_the_in_memory_layer(client, settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    response = client.get("/healthz")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_healthy_on_redis(client, settings, redis_url):
    settings.CHANNEL_LAYERS = redis_layer(redis_url)
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}


def test_an_unreachable_redis_answers_503_naming_the_channel_layer(client, settings):
    settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "unhealthy" and body["detail"].startswith("channel_layer: ")
    assert body["checks"]["database"] == "ok" and body["checks"]["channel_layer"] != "ok"


def test_no_login_is_needed_in_multi_user_mode(client, multi_user):
    multi_user.CHANNEL_LAYERS = IN_MEMORY
    assert client.get("/healthz").status_code == 200


def test_only_reading_is_allowed(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.daphne
def test_an_unreachable_database_answers_503_naming_the_database():
    with DaphneServer(env={"DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing",
                           "DATABASE_POOL": "0"}) as server:
        import requests

        response = requests.get(server.url + "healthz", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["detail"].startswith("database: ") and body["checks"]["database"] != "ok"
    assert body["checks"]["channel_layer"] == "ok"
