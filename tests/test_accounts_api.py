"""Registering, logging in and out through the API, with password rules and brute-force limits."""

import pytest
from django.contrib.auth import get_user_model

from accounts import tokens
from accounts.models import ApiToken
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def register(api, username="erin", password=PASSWORD, **extra):
    return api.post("/api/auth/register/", {"username": username, "password": password}, format="json", **extra)


def login(api, username="alice", password=PASSWORD, **extra):
    return api.post("/api/auth/login/", {"username": username, "password": password}, format="json", **extra)


def test_registering_creates_the_user_and_answers_with_a_token(api, multi_user):
    response = register(api)
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "erin" and body["token"].startswith("bks_")
    user = get_user_model().objects.get(username="erin")
    assert user.check_password(PASSWORD)
    assert tokens.user_for_token(body["token"]) == user


@pytest.mark.parametrize("password, message", [
    ("short", "too short"),
    ("password123", "too common"),
    ("4815162342108", "entirely numeric"),
    ("erin.plots.2024", "too similar to the username"),
])
def test_registering_applies_the_password_validators(api, multi_user, password, message):
    response = register(api, username="erin.plots", password=password)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and body["field"] == "password" and message in body["detail"]
    assert not get_user_model().objects.filter(username="erin.plots").exists()


def test_a_taken_username_answers_409(api, multi_user, alice):
    response = register(api, username="Alice")
    assert response.status_code == 409
    assert response.json() == {"error": "username_taken", "detail": "the username 'Alice' is taken", "field": "username"}


def test_a_bad_username_answers_400(api, multi_user):
    response = register(api, username="no spaces allowed")
    assert response.status_code == 400 and response.json()["field"] == "username"


def test_registration_can_be_turned_off(api, multi_user):
    multi_user.BOKEHSITE_ALLOW_REGISTRATION = False
    response = register(api)
    assert response.status_code == 403 and response.json()["error"] == "registration_closed"
    assert not get_user_model().objects.filter(username="erin").exists()


def test_logging_in_answers_with_a_new_token(api, multi_user, alice):
    response = login(api)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice" and tokens.user_for_token(body["token"]) == alice
    assert ApiToken.objects.get(user=alice).name == "login"


def test_a_wrong_password_answers_401(api, multi_user, alice):
    response = login(api, password="wrong")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_credentials", "detail": "wrong username or password", "field": None}
    assert not ApiToken.objects.exists()


def test_a_stale_saved_token_does_not_stop_a_login(api, multi_user, alice):
    response = login(api, HTTP_AUTHORIZATION="Token bks_revokedrevokedrevoked")
    assert response.status_code == 200


def test_logging_out_revokes_the_token_used(api, multi_user, alice):
    secret = login(api).json()["token"]
    other = login(api).json()["token"]
    assert api.post("/api/auth/logout/", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 204
    assert tokens.user_for_token(secret) is None
    assert tokens.user_for_token(other) == alice  # only the token used
    assert api.post("/api/auth/logout/", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 401


def test_logging_in_is_throttled_with_the_json_envelope(api, multi_user, alice):
    multi_user.BOKEHSITE_THROTTLE_RATES = {"login": "3/min", "register": "3/min"}
    statuses = [login(api, password="guess").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    response = login(api)  # even the right password waits
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "throttled" and "seconds" in body["detail"] and body["field"] is None
    assert int(response["Retry-After"]) > 0


def test_registering_is_throttled(api, multi_user):
    multi_user.BOKEHSITE_THROTTLE_RATES = {"login": "3/min", "register": "2/min"}
    assert register(api, "one").status_code == 201
    assert register(api, "two").status_code == 201
    response = register(api, "three")
    assert response.status_code == 429 and response.json()["error"] == "throttled"
    assert not get_user_model().objects.filter(username="three").exists()


def test_the_api_and_the_login_form_share_one_budget(api, client, multi_user, alice):
    multi_user.BOKEHSITE_THROTTLE_RATES = {"login": "2/min", "register": "2/min"}
    assert client.post("/accounts/login/", {"username": "alice", "password": "guess"}).status_code == 200
    assert login(api, password="guess").status_code == 401
    assert login(api).status_code == 429
    assert client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 429
