"""The Python client against a real Daphne server in multi-user mode: register, log in, publish."""

import json
import stat

import pytest
import requests

from accounts.models import ApiToken
from bokehsite.client import ServerError, Session
from bokehsite.client import config as client_config
from documents.models import Document
from tests.conftest import PASSWORD
from tests.helpers import line_document, run_script

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

SEED_REGISTER = """\
from bokehsite.client import Session

session = Session(root_url=url)
session.register(username, password)
"""
SEED_LOGIN = """\
from bokehsite.client import Session

session = Session(root_url=url)
session.login(username, password)
"""
SEED_PUBLISH = """\
from bokehsite.client import cursession, figure, output_server, show

output_server('myplot')

# make some plots
p = figure(plot_width=400, plot_height=400)
p.line([1, 2, 3, 4, 5], [6, 7, 2, 4, 5], line_width=2)
show(p)
print(cursession().publish())
"""


def run(source, url, tmp_path, **env):
    """Run a seed snippet as a script, as the user erin, with its home in ``tmp_path``."""
    preamble = f"url = {url!r}\nusername = 'erin'\npassword = {PASSWORD!r}\n"
    result = run_script(preamble + source, url, tmp_path, HOME=str(tmp_path), **env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_seed_snippets_register_then_publish_without_logging_in_again(multi_user_server_url, tmp_path):
    url = multi_user_server_url
    run(SEED_REGISTER, url, tmp_path)

    saved = json.loads(client_config.config_path().read_text())
    token = saved["servers"][url]["token"]
    assert saved["servers"][url]["username"] == "erin" and token.startswith("bks_")
    assert stat.S_IMODE(client_config.config_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(client_config.config_dir().stat().st_mode) == 0o700

    out = run(SEED_PUBLISH, url, tmp_path).splitlines()
    document = Document.objects.get(title="myplot")
    assert document.owner.username == "erin" and document.visibility == "public"
    assert out[-1] == f"{url}documents/{document.id}/?public=true"
    assert requests.get(out[-1], timeout=30).status_code == 200  # anyone, without logging in


def test_login_saves_a_token_that_later_sessions_use(multi_user_server_url, tmp_path):
    url = multi_user_server_url
    Session(url).register("erin", PASSWORD)
    client_config.forget_login(url)
    run(SEED_LOGIN, url, tmp_path)
    later = Session(url)
    assert later.username == "erin" and later.token
    later.use_doc("private plot")
    info = later.push(line_document())
    assert info["owner"] == "erin" and info["visibility"] == "private"
    assert requests.get(info["url"], timeout=30, allow_redirects=False).status_code == 302  # log in first
    assert ApiToken.objects.get(prefix=later.token[:12]).last_used is not None


def test_the_environment_token_overrides_the_saved_one(multi_user_server_url, monkeypatch):
    url = multi_user_server_url
    Session(url).register("erin", PASSWORD)
    other = Session(url)
    other.register("frank", PASSWORD)  # the saved login is now frank's
    erins = requests.post(f"{url}api/auth/login/", json={"username": "erin", "password": PASSWORD}, timeout=30).json()
    monkeypatch.setenv("BOKEH_API_TOKEN", erins["token"])
    session = Session(url)
    session.use_doc("whose")
    assert session.push(line_document())["owner"] == "erin"


def test_logout_revokes_the_token_and_forgets_it(multi_user_server_url):
    url = multi_user_server_url
    session = Session(url)
    token = session.register("erin", PASSWORD)
    session.logout()
    assert client_config.saved_login(url) is None and session.token is None
    assert ApiToken.objects.get(prefix=token[:12]).revoked is not None
    with pytest.raises(ServerError) as raised:
        Session(url, token=token).documents()
    assert raised.value.status == 401 and raised.value.code == "invalid_token"


def test_without_a_login_the_client_says_how_to_log_in(multi_user_server_url):
    with pytest.raises(ServerError) as raised:
        Session(multi_user_server_url).documents()
    assert raised.value.status == 401 and raised.value.code == "not_authenticated"
    assert "login(username, password)" in str(raised.value)


def test_a_wrong_password_is_a_server_error(multi_user_server_url):
    Session(multi_user_server_url).register("erin", PASSWORD)
    with pytest.raises(ServerError) as raised:
        Session(multi_user_server_url).login("erin", "not it")
    assert raised.value.code == "invalid_credentials"


def test_publish_unpublish_share_and_secret_link(multi_user_server_url):
    url = multi_user_server_url
    Session(url).register("bob", PASSWORD)
    session = Session(url)
    session.register("erin", PASSWORD)
    session.use_doc("shared")
    info = session.push(line_document())
    assert session.share("bob", "write")["role"] == "write"
    bobs = Session(url, token=requests.post(f"{url}api/auth/login/", json={"username": "bob", "password": PASSWORD},
                                            timeout=30).json()["token"])
    assert bobs.document_info(info["id"])["role"] == "write"
    secret = session.secret_link()
    assert requests.get(secret, timeout=30).status_code == 200
    public = session.publish()
    assert public.endswith("?public=true") and requests.get(public, timeout=30).status_code == 200
    assert session.unpublish()["visibility"] == "private"
    assert requests.get(public, timeout=30).status_code == 404
    session.unshare("bob")
    with pytest.raises(ServerError) as raised:
        bobs.document_info(info["id"])
    assert raised.value.status == 404
