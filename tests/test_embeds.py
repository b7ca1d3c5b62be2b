"""Embeds: autoload.js shows a document in another site's page, in a sandboxed frame that only
the allowed origins may draw; embed tokens are read-only, expiring, revocable and origin-bound."""

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from documents import embeds, services
from documents.exceptions import InvalidEmbedToken
from documents.frames import verify_frame_token
from documents.models import EmbedToken
from tests.conftest import token_client
from tests.helpers import closed_with, open_socket, receive, run, store

pytestmark = pytest.mark.django_db
HOST = "http://127.0.0.1:9001"  # the page that embeds


def config_of(response) -> dict:
    """The configuration autoload.js carries."""
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    return json.loads(re.search(r"const config = (\{.*\});", response.content.decode()).group(1))


def frame_token_of(config: dict) -> str:
    return parse_qs(urlsplit(config["frame_url"]).query)["frame_token"][0]


def make_token(document, origins=(HOST,), **kwargs) -> tuple[EmbedToken, str]:
    return embeds.create(document, list(origins), **kwargs)


# --- the API -----------------------------------------------------------------------------------


def test_the_owner_makes_lists_and_revokes_embed_tokens(alice, multi_user):
    api = token_client(alice)
    document = store(alice)
    made = api.post(f"/api/documents/{document.id}/embed-tokens/",
                    {"origins": ["https://Example.org:443/", HOST], "name": "wiki", "expires_in_days": 7}, format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["token"].startswith("bke_") and body["prefix"] == body["token"][:12]
    assert body["origins"] == [HOST, "https://example.org"] and body["active"] is True
    assert body["autoload_url"].endswith(f"/documents/{document.id}/autoload.js?embed_token={body['token']}")
    listed = api.get(f"/api/documents/{document.id}/embed-tokens/").json()
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    assert api.delete(f"/api/documents/{document.id}/embed-tokens/{body['id']}/").status_code == 204
    (revoked,) = api.get(f"/api/documents/{document.id}/embed-tokens/").json()
    assert revoked["revoked"] is not None and revoked["active"] is False
    assert api.delete(f"/api/documents/{document.id}/embed-tokens/{body['id']}/").status_code == 204  # again: no change


@pytest.mark.parametrize("payload, field", [
    ({"origins": []}, "origins"),
    ({"origins": ["example.org"]}, "origins"),
    ({"origins": ["https://example.org/path"]}, "origins"),
    ({"origins": ["javascript:alert(1)"]}, "origins"),
    ({"origins": ["https://a.example; script-src *"]}, "origins"),
    ({"origins": [f"https://{i}.example" for i in range(21)]}, "origins"),
    ({"origins": [HOST], "expires": "2001-01-01T00:00:00Z"}, "expires"),
    ({"origins": [HOST], "expires_in_days": 400}, "expires_in_days"),
    ({}, "origins"),
])
def test_bad_embed_tokens_are_refused_naming_the_field(alice, multi_user, payload, field):
    api = token_client(alice)
    document = store(alice)
    answer = api.post(f"/api/documents/{document.id}/embed-tokens/", payload, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid" and answer.json()["field"] == field
    assert not EmbedToken.objects.exists()


def test_only_the_owner_manages_embed_tokens(alice, bob, charlie, multi_user):
    document = store(alice)
    services.share(document, "bob", "write")
    token, _ = make_token(document)
    assert token_client(bob).get(f"/api/documents/{document.id}/embed-tokens/").status_code == 403
    assert token_client(charlie).post(f"/api/documents/{document.id}/embed-tokens/", {"origins": [HOST]},
                                      format="json").status_code == 404
    assert token_client(bob).delete(f"/api/documents/{document.id}/embed-tokens/{token.id}/").status_code == 403
    other = store(alice, "other")
    assert token_client(alice).delete(f"/api/documents/{other.id}/embed-tokens/{token.id}/").status_code == 404


# --- autoload.js ---------------------------------------------------------------------------------


def test_a_public_document_loads_anywhere_read_only(alice, client, multi_user):
    document = store(alice)
    services.publish(document)
    config = config_of(client.get(f"/documents/{document.id}/autoload.js", {"public": "true", "id": "plot1"},
                                  HTTP_REFERER="https://anywhere.example/page"))
    assert config["element"] == "plot1" and "error" not in config and "origins" not in config
    grant = verify_frame_token(frame_token_of(config))
    assert grant.role == "read" and grant.embed == "public"
    frame = client.get(config["frame_url"])
    assert frame.status_code == 200 and 'data-role="read"' in frame.content.decode()
    assert frame["Content-Security-Policy"] == "sandbox allow-scripts; frame-ancestors *"
    assert "X-Frame-Options" not in frame


def test_a_private_document_needs_an_embed_token_and_says_so(alice, client, multi_user):
    document = store(alice)
    client.force_login(alice)  # the visitor's cookies never count for an embed
    response = client.get(f"/documents/{document.id}/autoload.js")
    config = config_of(response)
    assert config["error"]["error"] == "not_found" and "needs an embed token" in config["error"]["detail"]
    assert response["X-Bokehsite-Error"] == "not_found" and "frame_url" not in config
    public = config_of(client.get(f"/documents/{document.id}/autoload.js", {"public": "true"}))
    assert "it is not public" in public["error"]["detail"]


def test_an_embed_token_shows_its_document_read_only_only_where_allowed(alice, client, multi_user):
    document = store(alice)
    token, secret = make_token(document, [HOST, "https://wiki.example"])
    config = config_of(client.get(f"/documents/{document.id}/autoload.js", {"embed_token": secret},
                                  HTTP_REFERER=f"{HOST}/page.html"))
    assert config["origins"] == [HOST, "https://wiki.example"]
    assert f"embed_token={secret}" in config["token_url"]
    grant = verify_frame_token(frame_token_of(config))
    assert (grant.role, grant.embed) == ("read", str(token.id))
    frame = client.get(config["frame_url"])
    assert frame.status_code == 200 and 'data-role="read"' in frame.content.decode()
    assert frame["Content-Security-Policy"] == f"sandbox allow-scripts; frame-ancestors {HOST} https://wiki.example"
    # a page of another origin is refused, and told which origins may
    other = config_of(client.get(f"/documents/{document.id}/autoload.js", {"embed_token": secret},
                                 HTTP_REFERER="https://evil.example/"))
    assert other["error"]["error"] == "origin_not_allowed"
    assert "https://evil.example" in other["error"]["detail"] and HOST in other["error"]["detail"]
    # and the token is for its document only
    elsewhere = store(alice, "other")
    wrong = config_of(client.get(f"/documents/{elsewhere.id}/autoload.js", {"embed_token": secret}))
    assert wrong["error"]["error"] == "invalid_embed_token"


@pytest.mark.parametrize("spoil, says", [
    (lambda token: embeds.revoke(token), "revoked"),
    (lambda token: EmbedToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1)), "expired"),
])
def test_a_revoked_or_expired_token_says_why_and_its_frames_stop(alice, client, multi_user, spoil, says):
    document = store(alice)
    token, secret = make_token(document)
    config = config_of(client.get(f"/documents/{document.id}/autoload.js", {"embed_token": secret}))
    spoil(token)
    refused = config_of(client.get(f"/documents/{document.id}/autoload.js", {"embed_token": secret}))
    assert refused["error"]["error"] == "invalid_embed_token" and says in refused["error"]["detail"]
    frame = client.get(config["frame_url"])
    assert frame.status_code == 401 and says in frame.content.decode()
    assert frame["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    content = client.get(f"/api/documents/{document.id}/doc/", {"frame_token": frame_token_of(config)},
                         HTTP_ACCEPT="application/vnd.bokehsite.bundle")
    assert content.status_code == 401 and content.json()["error"] == "invalid_embed_token"


def test_nonsense_tokens_and_element_ids_are_refused_plainly(alice, client, multi_user):
    document = store(alice)
    for secret in ("nonsense", "bke_" + "x" * 43, "bke_" + "x" * 200):
        config = config_of(client.get(f"/documents/{document.id}/autoload.js", {"embed_token": secret}))
        assert config["error"]["error"] == "invalid_embed_token"
    bad_id = config_of(client.get(f"/documents/{document.id}/autoload.js", {"public": "true", "id": "</script>"}))
    assert bad_id["error"]["field"] == "id"
    assert "</script>" not in client.get(f"/documents/{document.id}/autoload.js", {"id": "</script>"}).content.decode()


def test_in_single_user_mode_any_document_embeds_read_only(client):
    from accounts.users import default_user

    document = store(default_user())
    config = config_of(client.get(f"/documents/{document.id}/autoload.js"))
    grant = verify_frame_token(frame_token_of(config))
    assert (grant.role, grant.embed) == ("read", "open")
    frame = client.get(config["frame_url"])
    assert 'data-role="read"' in frame.content.decode()
    assert frame["Content-Security-Policy"] == "sandbox allow-scripts; frame-ancestors *"


def test_fresh_frame_tokens_for_embeds_check_the_origin_and_allow_cross_origin_reads(alice, client, multi_user):
    document = store(alice)
    token, secret = make_token(document)
    url = f"/documents/{document.id}/frame-token/"
    fresh = client.get(url, {"embed": "1", "embed_token": secret}, HTTP_ORIGIN=HOST)
    assert fresh.status_code == 200 and fresh["Access-Control-Allow-Origin"] == "*"
    assert verify_frame_token(fresh.json()["token"]).embed == str(token.id)
    refused = client.get(url, {"embed": "1", "embed_token": secret}, HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"
    embeds.revoke(token)
    gone = client.get(url, {"embed": "1", "embed_token": secret}, HTTP_ORIGIN=HOST)
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_embed_token"
    assert "revoked" in gone.json()["detail"] and gone["Access-Control-Allow-Origin"] == "*"


def test_the_plot_pages_own_frame_still_may_be_drawn_only_by_this_site(alice, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    page = client.get(f"/documents/{document.id}/").content.decode()
    frame_url = re.search(r'<iframe id="plot-frame"[^>]* src="([^"]+)"', page).group(1).replace("&amp;", "&")
    frame = client.get(frame_url)
    assert frame["Content-Security-Policy"] == "sandbox allow-scripts" and frame["X-Frame-Options"] == "SAMEORIGIN"


def test_the_embeds_page_makes_shows_once_and_revokes(alice, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    made = client.post(f"/documents/{document.id}/embeds/", {"action": "create", "origins": f"{HOST}, https://b.example",
                                                              "days": "3", "name": "blog"})
    body = made.content.decode()
    assert made.status_code == 200 and "autoload.js?embed_token=bke_" in body
    token = EmbedToken.objects.get()
    assert token.origins == [HOST, "https://b.example"] and token.name == "blog"
    assert timedelta(days=2.9) < token.expires - timezone.now() <= timedelta(days=3)
    listed = client.get(f"/documents/{document.id}/embeds/").content.decode()
    assert token.prefix in listed and "embed_token=bke_" not in listed  # the secret is shown once
    bad = client.post(f"/documents/{document.id}/embeds/", {"action": "create", "origins": "not an origin"}, follow=True)
    assert "is not an origin" in bad.content.decode() and EmbedToken.objects.count() == 1
    client.post(f"/documents/{document.id}/embeds/", {"action": "revoke", "token": str(token.id)})
    token.refresh_from_db()
    assert token.revoked is not None


def test_the_admin_revokes_embed_tokens(alice, client, multi_user):
    from tests.conftest import make_user

    admin = make_user("root", is_staff=True, is_superuser=True)
    token, _ = make_token(store(alice))
    client.force_login(admin)
    assert token.prefix in client.get("/admin/documents/embedtoken/").content.decode()
    client.post("/admin/documents/embedtoken/", {"action": "revoke", "_selected_action": [str(token.id)]})
    token.refresh_from_db()
    assert token.revoked is not None


# --- live connections of embeds ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_embeds_socket_reads_only_and_is_closed_with_the_reason_when_its_token_is_revoked(alice, multi_user):
    document = store(alice)
    token, secret = make_token(document)
    from documents import access

    caller = access.Caller(alice, embed=token)
    frame_token = access.mint_frame_token(caller, access.resolve(caller, document.id))

    async def scenario():
        socket, hello = await open_socket(f"/ws/documents/{document.id}/?frame_token={frame_token}")
        assert hello["type"] == "hello" and hello["role"] == "read"
        await database_sync_to_async(embeds.revoke)(token)
        error = await receive(socket, timeout=2)
        assert (error["type"], error["code"]) == ("error", "invalid_embed_token") and "revoked" in error["detail"]
        assert await closed_with(socket) == 4401

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_an_embeds_socket_is_closed_at_once_when_its_owner_is_deactivated(alice, multi_user):
    multi_user.BOKEHSITE_ACCESS_RECHECK = 3600  # nothing but the deactivation's announcement can close it
    document = store(alice)
    token, _ = make_token(document)
    from documents import access

    caller = access.Caller(AnonymousUser(), embed=token)
    frame_token = access.mint_frame_token(caller, access.resolve(caller, document.id))

    def deactivate():
        alice.is_active = False
        alice.save()

    async def scenario():
        socket, hello = await open_socket(f"/ws/documents/{document.id}/?frame_token={frame_token}",
                                          headers=[(b"origin", b"null")])
        assert hello["type"] == "hello" and hello["role"] == "read"
        await database_sync_to_async(deactivate)()
        error = await receive(socket, timeout=2)
        assert (error["type"], error["code"]) == ("error", "invalid_embed_token") and "disabled" in error["detail"]
        assert await closed_with(socket) == 4401

    run(scenario)


def test_embed_tokens_lookups_refuse_what_does_not_hold(alice):
    token, secret = make_token(store(alice))
    assert embeds.lookup(secret) == token
    with pytest.raises(InvalidEmbedToken):
        embeds.lookup(secret[:-1] + ("a" if secret[-1] != "a" else "b"))
    embeds.revoke(token)
    with pytest.raises(InvalidEmbedToken, match="revoked"):
        embeds.lookup(secret)


def test_an_embed_token_of_a_deactivated_owner_shows_nothing(alice, client, multi_user):
    document = store(alice)
    _, secret = make_token(document)
    alice.is_active = False
    alice.save()
    config = config_of(client.get(f"/documents/{document.id}/autoload.js", {"embed_token": secret}))
    assert config["error"]["error"] == "invalid_embed_token" and "disabled" in config["error"]["detail"]
