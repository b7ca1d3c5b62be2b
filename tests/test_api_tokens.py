"""API tokens: hashed at rest, shown once, named, revocable, expiring, and their last use recorded."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken
from tests.conftest import make_user
from tests.helpers import store

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana(db):
    return make_user("dana")


def auth(secret, scheme="Token"):
    return {"HTTP_AUTHORIZATION": f"{scheme} {secret}"}


def test_the_secret_is_stored_only_as_a_digest(dana):
    token, secret = tokens.create_token(dana, "laptop")
    assert secret.startswith("bks_") and len(secret) > 40
    row = ApiToken.objects.values().get(pk=token.pk)
    assert secret not in str(row)
    assert row["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == secret[:12] and row["name"] == "laptop"


def test_the_lookup_finds_the_user_and_records_last_use(dana):
    token, secret = tokens.create_token(dana, "laptop")
    assert token.last_used is None
    assert tokens.user_for_token(secret) == dana
    token.refresh_from_db()
    assert token.last_used is not None and timezone.now() - token.last_used < timedelta(seconds=5)


def test_a_wrong_secret_with_a_known_prefix_is_rejected(dana):
    _, secret = tokens.create_token(dana, "laptop")
    assert tokens.user_for_token(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert tokens.user_for_token("bks_") is None
    assert tokens.user_for_token("not a token") is None


def test_revoked_and_expired_tokens_are_rejected(dana, multi_user, api):
    revoked, revoked_secret = tokens.create_token(dana, "old")
    tokens.revoke_token(revoked)
    _, expired_secret = tokens.create_token(dana, "short", expires=timezone.now() - timedelta(seconds=1))
    for secret in (revoked_secret, expired_secret):
        assert tokens.user_for_token(secret) is None
        response = api.get("/api/documents/", **auth(secret))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert response["WWW-Authenticate"] == 'Token realm="bokehsite"'


def test_a_token_of_an_inactive_user_is_rejected(dana):
    _, secret = tokens.create_token(dana, "laptop")
    dana.is_active = False
    dana.save()
    assert tokens.user_for_token(secret) is None


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
def test_the_api_accepts_token_and_bearer(dana, multi_user, api, scheme):
    store(dana, "mine")
    _, secret = tokens.create_token(dana, "laptop")
    response = api.get("/api/documents/", **auth(secret, scheme))
    assert response.status_code == 200
    assert [d["title"] for d in response.json()] == ["mine"]


def test_an_api_call_without_credentials_answers_401_in_multi_user_mode(multi_user, api):
    response = api.get("/api/documents/")
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated", "detail": "Authentication credentials were not provided.", "field": None,
    }
    assert response["WWW-Authenticate"] == 'Token realm="bokehsite"'


def test_tokens_are_created_listed_and_revoked_through_the_api(dana, multi_user, api):
    _, secret = tokens.create_token(dana, "first")
    created = api.post("/api/tokens/", {"name": "ci", "expires_in_days": 30}, format="json", **auth(secret))
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith(body["prefix"]) and body["name"] == "ci"
    assert body["expires"] is not None and body["revoked"] is None

    listed = api.get("/api/tokens/", **auth(secret)).json()
    assert {t["name"] for t in listed} == {"first", "ci"}
    assert all("token" not in t and "digest" not in t for t in listed)

    assert api.delete(f"/api/tokens/{body['id']}/", **auth(secret)).status_code == 204
    assert api.get("/api/documents/", **auth(body["token"])).status_code == 401
    assert api.get(f"/api/tokens/{body['id']}/", **auth(secret)).json()["revoked"] is not None


def test_someone_elses_token_is_not_found(dana, charlie, multi_user, api):
    theirs, _ = tokens.create_token(charlie, "theirs")
    _, secret = tokens.create_token(dana, "mine")
    response = api.delete(f"/api/tokens/{theirs.id}/", **auth(secret))
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.revoked is None


def test_a_token_needs_a_name(dana, multi_user, api):
    _, secret = tokens.create_token(dana, "first")
    response = api.post("/api/tokens/", {}, format="json", **auth(secret))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid" and response.json()["field"] == "name"


def test_the_admin_lists_tokens_without_secrets_and_revokes_them(dana, client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    token, secret = tokens.create_token(dana, "laptop")
    client.force_login(admin)
    html = client.get("/admin/accounts/apitoken/").content.decode()
    assert token.prefix in html and "laptop" in html and "dana" in html
    assert secret not in html and token.digest not in html
    change = client.get(f"/admin/accounts/apitoken/{token.id}/change/").content.decode()
    assert secret not in change and token.digest not in change
    response = client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.id]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked is not None
    assert tokens.user_for_token(secret) is None
