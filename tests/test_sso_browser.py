"""Single sign-on in Chromium against a real OpenID provider (node-oidc-provider, tests/oidc/):
the round trip that creates an account and its groups, what is refused (a state this browser
did not start, a wrong nonce, an expired ID token), and a script's token through the browser."""

import queue
import threading
from datetime import date
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.models import ApiToken, SsoGroup, SsoIdentity
from bokehsite.client.session import Session
from tests.conftest import IN_CI, LIVE_RATES
from tests.oidc_provider import USERS, OidcProvider, node_missing
from tests.servers import DaphneServer, database_url, free_port

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def sso(django_db_setup):
    """A provider, and a multi-user server signing in with it: ``(provider, server_url)``."""
    if why := node_missing():
        if IN_CI:
            pytest.fail(f"the single sign-on tests need Node: {why}")
        pytest.skip(f"the single sign-on tests need Node: {why}")
    port = free_port()
    with OidcProvider(free_port(), f"http://127.0.0.1:{port}/oidc/callback/") as provider:
        env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_MULTI_USER": "1",
               **LIVE_RATES, **provider.env()}
        with DaphneServer(env=env, port=port) as server:
            yield provider, server.url


def sign_in_at_provider(page, login: str) -> None:
    """The provider's own login form (it takes any password)."""
    page.locator("input[name=login]").wait_for(timeout=30_000)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "whatever the provider asks")
    page.click("button[type=submit]")


def start_sso(page, url: str) -> None:
    page.goto(f"{url}accounts/login/")
    page.click("#sso-login")


def start_sso_changed(page, url: str, provider, **changes) -> None:
    """Start signing in, but go to the provider with some parameters of the server's request
    changed (the browser's cookies, the session's among them, are those of the real start)."""
    answer = page.request.get(f"{url}oidc/authenticate/", max_redirects=0)
    assert answer.status == 302
    parts = urlsplit(answer.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}" == provider.issuer
    page.goto(urlunsplit(parts._replace(query=urlencode({**dict(parse_qsl(parts.query)), **changes}))))


def test_signing_in_creates_the_account_and_sets_its_groups(sso, browser):
    provider, url = sso
    User = get_user_model()
    # Other tests' servers may have made accounts in this database (a single-user server's
    # defaultuser): only the accounts signing in makes are counted.
    existing = set(User.objects.values_list("username", flat=True))
    analysts = Group.objects.create(name="analysts")  # an admin's group, which the claim names too
    staff = Group.objects.create(name="staff")

    first = browser.new_context()
    page = first.new_page()
    start_sso(page, url)
    assert page.url.startswith(provider.issuer)
    sign_in_at_provider(page, "ada")
    page.wait_for_url(url, timeout=30_000)
    assert page.locator("header .user").inner_text() == "ada.lovelace"

    user = User.objects.get(username="ada.lovelace")
    assert not user.has_usable_password()
    assert user.email == "ada@example.org"
    assert SsoIdentity.objects.get(user=user).subject == "ada"
    assert set(user.groups.values_list("name", flat=True)) == {"analysts", "engines"}
    assert SsoGroup.objects.filter(group__name="engines").exists()
    assert not SsoGroup.objects.filter(group=analysts).exists()  # made by an admin: stays unmarked

    # An account without a usable password makes API tokens on its page.
    page.goto(f"{url}accounts/tokens/")
    page.fill("input[name=name]", "laptop")
    page.click("text=Create token")
    secret = page.locator("#new-token").inner_text().strip()
    answer = requests.get(f"{url}api/account/", headers={"Authorization": f"Token {secret}"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["username"] == "ada.lovelace"
    first.close()

    # Our admin adds a group; the provider's takes ada out of "engines" and renames her.
    user.groups.add(staff)
    provider.set_users({**USERS, "ada": {**USERS["ada"], "preferred_username": "ada.king", "groups": ["analysts"]}})
    try:
        second = browser.new_context()
        page = second.new_page()
        start_sso(page, url)
        sign_in_at_provider(page, "ada")
        page.wait_for_url(url, timeout=30_000)
        assert page.locator("header .user").inner_text() == "ada.lovelace"  # the same account, by its subject
        # Left: the SSO group the claim no longer names. Kept: the admin's groups, named or not.
        assert set(user.groups.values_list("name", flat=True)) == {"analysts", "staff"}
        assert set(User.objects.values_list("username", flat=True)) - existing == {"ada.lovelace"}
        second.close()
    finally:
        provider.set_users(USERS)


def test_a_username_claim_that_is_no_username_is_made_one(sso, browser):
    _, url = sso
    get_user_model().objects.create(username="AdaLovelace")
    context = browser.new_context()
    page = context.new_page()
    start_sso(page, url)
    sign_in_at_provider(page, "odd name")
    page.wait_for_url(url, timeout=30_000)
    assert page.locator("header .user").inner_text() == "AdaLovelace-2"
    context.close()


def test_a_state_this_browser_did_not_start_is_refused(sso, page):
    provider, url = sso
    start_sso_changed(page, url, provider, state="a-state-nobody-started")
    sign_in_at_provider(page, "mallory")
    error = page.locator("#sso-error")
    error.wait_for(timeout=30_000)
    assert "state" in error.inner_text()
    assert f"HTTP 400 {url}oidc/callback/" in " ".join(page.problems)
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert page.locator("header .user").count() == 0


def test_an_id_token_with_another_nonce_is_refused(sso, page):
    provider, url = sso
    start_sso_changed(page, url, provider, nonce="not-the-nonce-the-server-chose")
    sign_in_at_provider(page, "mallory")
    error = page.locator("#sso-error")
    error.wait_for(timeout=30_000)
    assert "Nonce" in error.inner_text()
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_an_expired_id_token_is_refused(sso, page):
    _, url = sso
    start_sso(page, url)
    sign_in_at_provider(page, "late")  # its ID token lives 1 s and arrives 2.5 s after it was made
    error = page.locator("#sso-error")
    error.wait_for(timeout=30_000)
    assert "expired" in error.inner_text()
    assert not get_user_model().objects.filter(username="late").exists()


def test_login_browser_gets_a_token_for_the_user_who_signed_in(sso, page, tmp_path):
    _, url = sso
    opened: queue.Queue[str] = queue.Queue()
    result: dict = {}
    session = Session(root_url=url)

    def log_in():
        try:
            result["token"] = session.login_browser(timeout=120, open_browser=opened.put)
        except Exception as e:  # noqa: BLE001 - shown by the assertion below
            result["error"] = e

    thread = threading.Thread(target=log_in, daemon=True)
    thread.start()
    authorize = opened.get(timeout=30)
    assert authorize.startswith(f"{url}accounts/token/authorize/?port=")

    page.goto(authorize)  # not logged in: the login page, then the provider
    page.click("#sso-login")
    sign_in_at_provider(page, "ada")
    page.locator("#allow").wait_for(timeout=30_000)
    assert page.url.startswith(authorize.split("?")[0])
    page.click("#allow")
    page.wait_for_url("http://127.0.0.1:*/?*", timeout=30_000)
    assert "you can close this tab" in page.content()
    thread.join(30)

    assert "error" not in result, result.get("error")
    token = result["token"]
    assert session.token == token and session.username == "ada.lovelace"
    answer = requests.get(f"{url}api/account/", headers={"Authorization": f"Token {token}"}, timeout=30)
    assert answer.json()["username"] == "ada.lovelace"
    stored = ApiToken.objects.get(user__username="ada.lovelace", name__startswith="created by login_browser")
    assert stored.name == f"created by login_browser on {date.today():%Y-%m-%d}"
    assert Session(root_url=url).token == token  # saved for later scripts, as login() saves it
