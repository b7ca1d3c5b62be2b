"""Login limits count the client's real address: X-Forwarded-For counts only behind trusted proxies."""

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(multi_user, alice):
    multi_user.BOKEHSITE_THROTTLE_RATES = {"login": "3/min", "register": "3/min"}
    return multi_user


@pytest.fixture
def one_proxy(limited):
    """One trusted reverse proxy in front of the server (``BOKEHSITE_TRUSTED_PROXIES=1``)."""
    limited.REST_FRAMEWORK = {**limited.REST_FRAMEWORK, "NUM_PROXIES": 1}
    return limited


def login(api, password=PASSWORD, **headers):
    return api.post("/api/auth/login/", {"username": "alice", "password": password}, format="json", **headers)


def form_login(client, password=PASSWORD, **headers):
    return client.post("/accounts/login/", {"username": "alice", "password": password}, **headers)


def test_by_default_a_changing_forwarded_for_header_does_not_reset_the_limit(api, client, limited):
    guesses = [login(api, "guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(4)]
    assert guesses == [401, 401, 401, 429]
    # Even the right password, from a "new" address in the header, waits.
    response = login(api, HTTP_X_FORWARDED_FOR="203.0.113.99")
    assert response.status_code == 429 and response.json()["error"] == "throttled"
    assert form_login(client, HTTP_X_FORWARDED_FOR="203.0.113.100").status_code == 429


def test_by_default_the_limit_is_per_socket_address(api, limited):
    for _ in range(3):
        login(api, "guess", REMOTE_ADDR="192.0.2.1")
    assert login(api, REMOTE_ADDR="192.0.2.1").status_code == 429
    assert login(api, REMOTE_ADDR="192.0.2.2").status_code == 200


def test_behind_one_trusted_proxy_the_last_forwarded_address_is_the_client(api, client, one_proxy):
    # What the client put in the header before the proxy appended its address does not count.
    for i in range(3):
        assert login(api, "guess", HTTP_X_FORWARDED_FOR=f"10.9.9.{i}, 203.0.113.7").status_code == 401
    assert login(api, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7").status_code == 429
    assert form_login(client, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    # Another client behind the same proxy (same socket address) has its own budget.
    assert login(api, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


def test_behind_a_trusted_proxy_a_request_without_the_header_is_its_socket_address(api, one_proxy):
    for _ in range(3):
        login(api, "guess", REMOTE_ADDR="192.0.2.1")
    assert login(api, REMOTE_ADDR="192.0.2.1").status_code == 429
    assert login(api, REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200
