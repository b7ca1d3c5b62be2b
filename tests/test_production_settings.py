"""BOKEHSITE_HTTPS=1 is production over HTTPS: Django's deployment check is clean, and it does what it says."""

import os
import secrets
import subprocess
import sys

import pytest
import requests

from tests.servers import ROOT, DaphneServer, database_url

PRODUCTION = {"BOKEHSITE_HTTPS": "1", "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
              "ALLOWED_HOSTS": "plots.example.org,127.0.0.1"}
CLEAR = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "BOKEHSITE_HTTPS", "BOKEHSITE_TRUSTED_PROXIES",
         "BOKEHSITE_HSTS_SECONDS", "BOKEHSITE_HSTS_INCLUDE_SUBDOMAINS", "BOKEHSITE_HSTS_PRELOAD", "DATABASE_URL")


def deploy_check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in CLEAR}
    full.update(DJANGO_SETTINGS_MODULE="bokehsite.settings", BOKEHSITE_DATA_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=100)


def test_the_deployment_check_is_clean_with_production_settings(tmp_path):
    result = deploy_check(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout and "WARNING" not in result.stderr
    # The one check silenced by default is the HSTS preload list; opting in needs no silencing.
    assert "(1 silenced)" in result.stdout
    preload = deploy_check(tmp_path, **PRODUCTION, BOKEHSITE_HSTS_PRELOAD="1")
    assert preload.returncode == 0 and "(0 silenced)" in preload.stdout, preload.stdout + preload.stderr


def test_without_the_https_switch_the_deployment_check_complains(tmp_path):
    result = deploy_check(tmp_path, **{**PRODUCTION, "BOKEHSITE_HTTPS": "0"})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


@pytest.fixture(scope="module")
def https_server(django_db_setup):
    """A Daphne process in production settings behind one trusted TLS-terminating proxy."""
    from django.conf import settings

    env = {**PRODUCTION, "DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_TRUSTED_PROXIES": "1"}
    with DaphneServer(env=env) as server:
        yield server.url


HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_plain_http_is_redirected_to_https(https_server):
    response = requests.get(https_server + "accounts/login/", allow_redirects=False, timeout=30)
    assert response.status_code == 301 and response.headers["Location"].startswith("https://127.0.0.1:")
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_over_https_pages_carry_hsts_and_secure_cookies(https_server):
    response = requests.get(https_server + "accounts/login/", headers=HTTPS, allow_redirects=False, timeout=30)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Secure" in response.headers["Set-Cookie"] and "csrftoken=" in response.headers["Set-Cookie"]


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_the_health_check_answers_over_plain_http(https_server):
    assert requests.get(https_server + "healthz", allow_redirects=False, timeout=30).status_code == 200


def test_x_forwarded_proto_is_trusted_only_behind_a_trusted_proxy(tmp_path):
    code = ("import django; from django.conf import settings; django.setup(); "
            "print(settings.SECURE_PROXY_SSL_HEADER, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE)")
    def run(**env):
        full = {k: v for k, v in os.environ.items() if k not in CLEAR}
        full.update(DJANGO_SETTINGS_MODULE="bokehsite.settings", BOKEHSITE_DATA_DIR=str(tmp_path), **env)
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True).stdout.split()
    assert run() == ["None", "False", "False"]
    assert run(BOKEHSITE_HTTPS="1") == ["None", "True", "True"]
    assert run(BOKEHSITE_HTTPS="1", BOKEHSITE_TRUSTED_PROXIES="1") == ["('HTTP_X_FORWARDED_PROTO',", "'https')", "True", "True"]
