"""Logging in, registering, logging out and managing API tokens through the HTML pages."""

import re

import pytest
from django.contrib.auth import get_user_model

from accounts import tokens
from accounts.models import ApiToken
from tests.conftest import PASSWORD
from tests.helpers import store

pytestmark = pytest.mark.django_db


def test_pages_redirect_to_the_login_page_in_multi_user_mode(client, multi_user, alice):
    document = store(alice)
    for url in ("/", f"/documents/{document.id}/", "/accounts/tokens/", "/documents/00000000-0000-0000-0000-000000000000/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}"


def test_single_user_mode_needs_no_login(client):
    assert client.get("/").status_code == 200
    assert "Log in" not in client.get("/").content.decode()


def test_logging_in_through_the_form_shows_the_users_documents(client, multi_user, alice, charlie):
    store(alice, "alices plot")
    store(charlie, "charlies plot")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/").content.decode()
    assert "alices plot" in page and "charlies plot" not in page and "Log out" in page


def test_a_wrong_password_stays_on_the_form(client, multi_user, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200 and "correct username and password" in response.content.decode()


def test_logging_out_is_a_post(client, multi_user, alice):
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_registering_through_the_form_logs_in(client, multi_user):
    response = client.post("/accounts/register/", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert get_user_model().objects.get(username="erin").check_password(PASSWORD)


def test_the_register_form_applies_the_password_validators(client, multi_user):
    response = client.post("/accounts/register/", {"username": "erin", "password1": "12345678", "password2": "12345678"})
    assert response.status_code == 400
    assert "too common" in response.content.decode()
    assert not get_user_model().objects.filter(username="erin").exists()


def test_the_register_form_is_closed_when_registration_is_off(client, multi_user):
    multi_user.BOKEHSITE_ALLOW_REGISTRATION = False
    assert client.get("/accounts/register/").status_code == 403
    response = client.post("/accounts/register/", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 403 and not get_user_model().objects.filter(username="erin").exists()
    assert "Register" not in client.get("/accounts/login/").content.decode().split("</header>")[1]


def test_the_login_form_is_throttled(client, multi_user, alice):
    multi_user.BOKEHSITE_THROTTLE_RATES = {"login": "2/min", "register": "2/min"}
    for _ in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": "guess"})
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429 and "Too many attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert client.get("/").status_code == 302  # not logged in


def test_the_register_form_is_throttled(client, multi_user):
    multi_user.BOKEHSITE_THROTTLE_RATES = {"login": "2/min", "register": "1/min"}
    client.post("/accounts/register/", {"username": "one", "password1": "x", "password2": "y"})
    response = client.post("/accounts/register/", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 429 and not get_user_model().objects.filter(username="erin").exists()


def test_the_tokens_page_shows_a_new_secret_once_and_revokes(client, multi_user, alice):
    client.force_login(alice)
    response = client.post("/accounts/tokens/", {"action": "create", "name": "laptop", "expires_in_days": "7"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = re.search(r'<pre id="new-token">(bks_[^<]+)</pre>', response.content.decode()).group(1)
    assert tokens.user_for_token(secret) == alice
    listing = client.get("/accounts/tokens/").content.decode()
    token = ApiToken.objects.get(user=alice)
    assert token.prefix in listing and secret not in listing and "laptop" in listing
    client.post("/accounts/tokens/", {"action": "revoke", "id": token.id})
    assert tokens.user_for_token(secret) is None
    assert "revoked" in client.get("/accounts/tokens/").content.decode()
