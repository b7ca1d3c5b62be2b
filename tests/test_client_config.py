"""The client's saved logins: one file, keyed by server URL, readable only by its owner."""

import json
import stat

from bokehsite.client import Session
from bokehsite.client import config


def test_saving_creates_a_private_directory_and_file(tmp_path):
    config.save_login("http://a.example/", "bks_one", "alice")
    config.save_login("http://b.example/", "bks_two", "bob")
    assert stat.S_IMODE(config.config_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(config.config_path().stat().st_mode) == 0o600
    data = json.loads(config.config_path().read_text())
    assert data == {"servers": {"http://a.example/": {"token": "bks_one", "username": "alice"},
                                "http://b.example/": {"token": "bks_two", "username": "bob"}}}


def test_a_loosely_permitted_file_becomes_private_on_the_next_save(tmp_path):
    config.config_dir().mkdir(mode=0o755)
    config.config_path().write_text("{}")
    config.config_path().chmod(0o644)
    config.save_login("http://a.example/", "bks_one", "alice")
    assert stat.S_IMODE(config.config_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(config.config_dir().stat().st_mode) == 0o700


def test_a_damaged_file_is_treated_as_empty_and_forgetting_removes_one_server():
    config.config_dir().mkdir()
    config.config_path().write_text("not json")
    assert config.saved_login("http://a.example/") is None
    config.save_login("http://a.example/", "bks_one", "alice")
    config.save_login("http://b.example/", "bks_two", "bob")
    config.forget_login("http://a.example/")
    assert config.saved_login("http://a.example/") is None
    assert config.saved_login("http://b.example/")["token"] == "bks_two"


def test_the_token_comes_from_the_argument_then_the_environment_then_the_file(monkeypatch):
    config.save_login("http://a.example/", "bks_saved", "alice")
    assert Session("http://a.example").token == "bks_saved"
    monkeypatch.setenv("BOKEH_API_TOKEN", "bks_env")
    assert Session("http://a.example").token == "bks_env"
    assert Session("http://a.example", token="bks_arg").token == "bks_arg"
    assert Session("http://other.example").token == "bks_env"


def test_without_a_token_nothing_is_sent():
    session = Session("http://a.example")
    assert session.token is None and "Authorization" not in session.http.headers
