"""Single sign-on without a browser: accounts and groups from claims, the provider's discovery,
local passwords turned off, and the page that hands a script an API token (login_browser)."""

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts import oidc, sso
from accounts.models import ApiToken, SsoGroup, SsoIdentity
from tests.conftest import PASSWORD
from tests.servers import ROOT, StaticSite, free_port

ISSUER = "https://id.example.org/realms/lab"
STATE = "s" * 32


def claims(sub="u-1", **more):
    return {"sub": sub, "preferred_username": "ada", "email": "ada@example.org", **more}


# --- accounts and groups from claims --------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_sign_in_creates_an_account_without_a_password_and_later_ones_find_it():
    user = sso.sign_in(ISSUER, claims(given_name="Ada", family_name="Lovelace"))
    assert (user.username, user.email, user.first_name, user.last_name) == ("ada", "ada@example.org", "Ada", "Lovelace")
    assert not user.has_usable_password()
    # The same subject under another name is the same account; another subject is another one.
    assert sso.sign_in(ISSUER, claims(preferred_username="ada.k")) == user
    other = sso.sign_in(ISSUER, claims(sub="u-2"))
    assert other.username == "ada-2"
    assert sso.sign_in("https://elsewhere.example.org", claims()).username == "ada-3"
    assert SsoIdentity.objects.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(("given", "username"), [
    ({"preferred_username": "Ada Lovelace (lab)"}, "AdaLovelacelab"),
    ({"preferred_username": "", "email": "a.l@example.org"}, "a.l"),
    ({"preferred_username": None, "email": None}, "u-1"),
    ({"preferred_username": "!!!"}, "user"),
    ({"preferred_username": "x" * 300}, "x" * 150),
    ({"preferred_username": "defaultuser"}, "defaultuser-2"),
])
def test_a_username_is_made_valid(given, username):
    assert sso.sign_in(ISSUER, claims(**given)).username == username


@pytest.mark.django_db
def test_a_taken_long_username_stays_within_the_length():
    get_user_model().objects.create(username="x" * 150)
    assert sso.sign_in(ISSUER, claims(preferred_username="x" * 200)).username == "x" * 148 + "-2"


@pytest.mark.django_db
def test_the_groups_claim_sets_groups_and_leaves_only_those_from_sso():
    admins_own = Group.objects.create(name="physics")  # an admin's, which the claim also names
    staff = Group.objects.create(name="staff")
    user = sso.sign_in(ISSUER, claims(groups=["physics", "optics", " lab "]))
    assert set(user.groups.values_list("name", flat=True)) == {"physics", "optics", "lab"}
    assert set(SsoGroup.objects.values_list("group__name", flat=True)) == {"optics", "lab"}

    user.groups.add(staff)
    sso.sign_in(ISSUER, claims(groups=["lab"]))
    assert set(user.groups.values_list("name", flat=True)) == {"lab", "physics", "staff"}
    assert Group.objects.filter(name="optics").exists()  # the group stays, for its other members

    sso.sign_in(ISSUER, claims())  # no groups claim: groups as they were
    assert set(user.groups.values_list("name", flat=True)) == {"lab", "physics", "staff"}
    sso.sign_in(ISSUER, claims(groups=[]))
    assert set(user.groups.values_list("name", flat=True)) == {"physics", "staff"}
    assert admins_own.user_set.get() == user


@pytest.mark.django_db
def test_groups_come_from_the_claim_the_settings_name(settings):
    settings.BOKEHSITE_OIDC_GROUPS_CLAIM = "roles"
    user = sso.sign_in(ISSUER, claims(groups=["ignored"], roles="editor"))
    assert list(user.groups.values_list("name", flat=True)) == ["editor"]
    settings.BOKEHSITE_OIDC_GROUPS_CLAIM = ""
    sso.sign_in(ISSUER, claims(roles=[]))
    assert list(user.groups.values_list("name", flat=True)) == ["editor"]


@pytest.mark.django_db
@pytest.mark.parametrize(("bad", "says"), [
    ({"groups": [1, 2]}, "list of group names"),
    ({"groups": {"a": 1}}, "list of group names"),
    ({"groups": [f"g{i}" for i in range(4)]}, "at most 3 (BOKEHSITE_OIDC_MAX_GROUPS)"),
    ({"sub": ""}, "no subject"),
])
def test_claims_that_cannot_sign_in_are_refused(settings, bad, says):
    settings.BOKEHSITE_OIDC_MAX_GROUPS = 3
    with pytest.raises(sso.SsoRefused, match=says.replace("(", r"\(").replace(")", r"\)")):
        sso.sign_in(ISSUER, claims(**bad))
    assert not get_user_model().objects.exists() and not Group.objects.exists()


# --- the provider's configuration -------------------------------------------------------------------


@pytest.fixture
def sso_settings(settings, multi_user):
    """Settings of a server with single sign-on (as BOKEHSITE_OIDC_* would make them)."""
    def configure(issuer: str):
        settings.BOKEHSITE_OIDC_ISSUER = issuer
        settings.OIDC_RP_CLIENT_ID = settings.BOKEHSITE_OIDC_CLIENT_ID = "bokehsite"
        settings.OIDC_RP_CLIENT_SECRET = settings.BOKEHSITE_OIDC_CLIENT_SECRET = "secret"
        settings.OIDC_RP_SCOPES = "openid email profile"
        settings.OIDC_RP_SIGN_ALGO = "RS256"
        settings.OIDC_USE_PKCE = True
        settings.BOKEHSITE_OIDC_PROVIDER_NAME = ""
        return settings

    oidc._discover.cache_clear()
    yield configure
    oidc._discover.cache_clear()


@pytest.mark.django_db
def test_the_login_page_offers_single_sign_on_only_when_configured(client, sso_settings):
    assert "Log in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    sso_settings("https://login.example.org/realms/lab")
    page = client.get("/accounts/login/?next=/documents/x/").content.decode()
    assert "Log in with login.example.org" in page
    assert 'href="/oidc/authenticate/?next=/documents/x/"' in page
    assert 'name="password"' in page


@pytest.mark.django_db
def test_an_unreachable_provider_is_named_on_the_page(client, sso_settings):
    issuer = f"http://127.0.0.1:{free_port()}"
    sso_settings(issuer)
    answer = client.get("/oidc/authenticate/")
    assert answer.status_code == 502
    assert f"cannot read the OpenID provider&#x27;s configuration at {issuer}/.well-known/openid-configuration" \
        in answer.content.decode()


@pytest.mark.django_db
def test_a_provider_that_is_another_issuer_is_refused(client, sso_settings, tmp_path):
    (tmp_path / ".well-known").mkdir()
    with StaticSite(tmp_path) as site:
        endpoints = {key: f"{site.origin}/{key}" for key in oidc.ENDPOINTS.values()}
        (tmp_path / ".well-known" / "openid-configuration").write_text(
            json.dumps({"issuer": "https://impostor.example.org", **endpoints}))
        sso_settings(site.origin)
        answer = client.get("/oidc/authenticate/")
        assert answer.status_code == 502
        assert "calls itself &#x27;https://impostor.example.org&#x27;" in answer.content.decode()

        (tmp_path / ".well-known" / "openid-configuration").write_text(json.dumps({"issuer": site.origin, **endpoints}))
        answer = client.get("/oidc/authenticate/?next=/documents/")
        assert answer.status_code == 302
        sent = urlsplit(answer["Location"])
        query = parse_qs(sent.query)
        assert f"{sent.scheme}://{sent.netloc}{sent.path}" == endpoints["authorization_endpoint"]
        assert query["scope"] == ["openid email profile"] and query["client_id"] == ["bokehsite"]
        assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
        assert query["redirect_uri"] == ["http://testserver/oidc/callback/"]


@pytest.mark.timeout(180)
def test_bokeh_server_stops_when_the_provider_cannot_be_reached(tmp_path):
    issuer = f"http://127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BOKEHSITE_OIDC_CLIENT_SECRET": "secret",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bokehsite.cli import bokeh_server; sys.exit(bokeh_server())",
         "-m", "--port", str(free_port()), "--oidc-issuer", issuer, "--oidc-client-id", "bokehsite"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"cannot read the OpenID provider's configuration at {issuer}/.well-known/openid-configuration" in done.stderr

    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bokehsite.cli import bokeh_server; sys.exit(bokeh_server())",
         "-m", "--no-local-login"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "BOKEHSITE_LOCAL_LOGIN=0 leaves no way to log in" in done.stderr


# --- local passwords turned off -----------------------------------------------------------------------


@pytest.fixture
def no_passwords(settings, multi_user, alice):
    settings.BOKEHSITE_LOCAL_LOGIN = False
    return settings


def test_without_local_passwords_the_api_refuses_them(api, no_passwords):
    answer = api.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert answer.status_code == 403
    assert answer.json()["error"] == "local_login_disabled"
    answer = api.post("/api/auth/register/", {"username": "zed", "password": PASSWORD}, format="json")
    assert answer.status_code == 403 and answer.json()["error"] == "registration_closed"


def test_without_local_passwords_the_login_page_has_no_form(client, no_passwords):
    page = client.get("/accounts/login/").content.decode()
    assert 'name="password"' not in page and "Register" not in page
    answer = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 403
    assert "_auth_user_id" not in client.session


# --- a token for a script, through the browser ------------------------------------------------------


def authorize_url(port=50123, state=STATE) -> str:
    return f"/accounts/token/authorize/?port={port}&state={state}"


def test_the_token_page_asks_for_a_login_first(client, multi_user, db):
    answer = client.get(authorize_url())
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/?next=/accounts/token/authorize/")


@pytest.mark.parametrize(("query", "field"), [
    ("state=" + STATE, "port"),
    ("port=80&state=" + STATE, "port"),
    ("port=70000&state=" + STATE, "port"),
    ("port=http://evil.example.org/&state=" + STATE, "port"),
    ("port=50123", "state"),
    ("port=50123&state=short", "state"),
    ("port=50123&state=" + "s" * 20 + "%2F..", "state"),
])
def test_a_request_a_script_would_not_send_is_refused(client, multi_user, alice, query, field):
    client.force_login(alice)
    for method in (client.get, client.post):
        answer = method(f"/accounts/token/authorize/?{query}", {"action": "allow"} if method == client.post else None)
        assert answer.status_code == 400
        assert f"{field} must be" in answer.content.decode()
    assert not ApiToken.objects.exists()


def test_allowing_hands_a_new_token_to_the_loopback_address(client, multi_user, alice):
    client.force_login(alice)
    page = client.get(authorize_url())
    assert page.status_code == 200 and "http://127.0.0.1:50123/" in page.content.decode()
    assert not ApiToken.objects.exists()  # looking is not allowing

    answer = client.post(authorize_url(), {"action": "allow"})
    assert answer.status_code == 302
    target = urlsplit(answer["Location"])
    assert (target.scheme, target.netloc, target.path) == ("http", "127.0.0.1:50123", "/")
    query = parse_qs(target.query)
    assert query["state"] == [STATE] and query["username"] == ["alice"]
    token = ApiToken.objects.get(user=alice)
    assert token.name.startswith("created by login_browser on ")
    assert query["token"][0].startswith(token.prefix)
    assert answer["Cache-Control"] == "no-store"


def test_denying_tells_the_script_without_a_token(client, multi_user, alice):
    client.force_login(alice)
    answer = client.post(authorize_url(), {"action": "deny"})
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert query == {"error": ["access_denied"], "state": [STATE]}
    assert not ApiToken.objects.exists()


# --- the script's side: the loopback receiver ---------------------------------------------------------


def test_the_receiver_takes_only_the_answer_with_its_state():
    import requests

    from bokehsite.client import BrowserLoginFailed
    from bokehsite.client.browser_login import LoopbackReceiver

    with LoopbackReceiver() as receiver:
        here = f"http://127.0.0.1:{receiver.port}/"
        forged = requests.get(here, params={"token": "bks_forged", "state": "x" * 43}, timeout=10)
        assert forged.status_code == 400
        assert requests.get(here, params={"token": "bks_forged"}, timeout=10).status_code == 400
        with pytest.raises(BrowserLoginFailed, match="within 0.2 seconds"):
            receiver.wait(0.2)
        answer = requests.get(here, params={"token": "bks_real", "username": "ada", "state": receiver.state}, timeout=10)
        assert answer.status_code == 200 and "close this tab" in answer.text
        assert receiver.wait(1) == {"token": "bks_real", "username": "ada", "state": receiver.state}

    with LoopbackReceiver() as receiver:
        answer = requests.get(f"http://127.0.0.1:{receiver.port}/",
                              params={"error": "access_denied", "state": receiver.state}, timeout=10)
        assert answer.status_code == 403
        with pytest.raises(BrowserLoginFailed, match="access_denied"):
            receiver.wait(1)


# --- the settings ----------------------------------------------------------------------------------


SSO_SETTINGS = """
import django, json
from django.conf import settings
django.setup()
print(json.dumps({"backends": settings.AUTHENTICATION_BACKENDS, "scopes": getattr(settings, "OIDC_RP_SCOPES", None),
                  "algo": getattr(settings, "OIDC_RP_SIGN_ALGO", None), "issuer": settings.BOKEHSITE_OIDC_ISSUER}))
"""


def sso_settings_of(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOKEHSITE_")}
    full = {**base, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", "BOKEHSITE_DATA_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", SSO_SETTINGS], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("env", "says"), [
    ({"BOKEHSITE_OIDC_ISSUER": "https://id.example.org"}, "needs BOKEHSITE_OIDC_CLIENT_ID and BOKEHSITE_OIDC_CLIENT_SECRET"),
    ({"BOKEHSITE_OIDC_ISSUER": "id.example.org", "BOKEHSITE_OIDC_CLIENT_ID": "a", "BOKEHSITE_OIDC_CLIENT_SECRET": "b"},
     "BOKEHSITE_OIDC_ISSUER must be an https://"),
    ({"BOKEHSITE_OIDC_ISSUER": "https://id.example.org", "BOKEHSITE_OIDC_CLIENT_ID": "a",
      "BOKEHSITE_OIDC_CLIENT_SECRET": "b", "BOKEHSITE_OIDC_SCOPES": "email"}, "must include openid"),
    ({"BOKEHSITE_LOCAL_LOGIN": "0"}, "leaves no way to log in"),
    ({"BOKEHSITE_OIDC_MAX_GROUPS": "-1"}, "BOKEHSITE_OIDC_MAX_GROUPS must be 0 or more"),
])
def test_single_sign_on_settings_that_cannot_work_fail_loudly(tmp_path, env, says):
    result = sso_settings_of(tmp_path, **env)
    assert result.returncode != 0 and says in result.stderr


def test_single_sign_on_settings(tmp_path):
    env = {"BOKEHSITE_OIDC_ISSUER": "https://id.example.org/realms/lab/", "BOKEHSITE_OIDC_CLIENT_ID": "a",
           "BOKEHSITE_OIDC_CLIENT_SECRET": "b"}
    values = json.loads(sso_settings_of(tmp_path, **env).stdout)
    assert values == {"backends": ["django.contrib.auth.backends.ModelBackend", "accounts.oidc.Backend"],
                      "scopes": "openid email profile", "algo": "RS256", "issuer": "https://id.example.org/realms/lab/"}
    values = json.loads(sso_settings_of(tmp_path, BOKEHSITE_LOCAL_LOGIN="0", **env).stdout)
    assert values["backends"] == ["accounts.oidc.Backend"]
    assert json.loads(sso_settings_of(tmp_path).stdout)["backends"] == ["django.contrib.auth.backends.ModelBackend"]


@pytest.mark.django_db
def test_an_identity_an_admin_gives_an_existing_account_signs_in_as_it(alice):
    SsoIdentity.objects.create(user=alice, issuer=ISSUER, subject="u-1")
    assert sso.sign_in(ISSUER, claims(preferred_username="someone-else")) == alice
    alice.refresh_from_db()
    assert alice.has_usable_password()  # a password it had stays


def test_the_admin_adds_identities_to_existing_accounts(client, alice, db):
    from tests.conftest import make_user

    admin = make_user("root", password=PASSWORD, is_staff=True, is_superuser=True)
    client.force_login(admin)
    answer = client.post("/admin/accounts/ssoidentity/add/", {"user": alice.pk, "issuer": ISSUER, "subject": "u-9"})
    assert answer.status_code == 302
    assert SsoIdentity.objects.get(subject="u-9").user == alice
    assert client.get("/admin/accounts/ssogroup/").status_code == 200


def test_without_local_passwords_the_admin_sends_people_to_the_login_page(client, no_passwords):
    answer = client.get("/admin/login/?next=/admin/accounts/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/?next=/admin/accounts/"
    assert client.get("/admin/").url.startswith("/admin/login/")


def test_with_local_passwords_the_admin_has_its_own_form(client, multi_user, db):
    assert 'name="password"' in client.get("/admin/login/").content.decode()
