"""``deploy/nginx.conf`` in front of two Daphnes (on a PostgreSQL and a Redis of this module's
own), as documented in the README: the site file is run by a real nginx, with only its ports,
certificate paths and upstream substituted. Through it: HTTP goes to HTTPS once and HTTPS is not
redirected again, HTTPS answers carry HSTS, websockets and a push of several megabytes work, the
login limit counts the address nginx saw, never one the client wrote, and the staff's health page
counts the websockets of both Daphnes.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
from bokeh.document import Document as BokehDocument
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from requests.adapters import HTTPAdapter

from bokehsite.client import Session
from bokehsite.client.follower import Follower
from tests import faults
from tests.conftest import PASSWORD
from tests.helpers import wait_until
from tests.servers import ROOT, DaphneServer, free_port, wait_for_port

pytestmark = [pytest.mark.faults, pytest.mark.daphne, pytest.mark.timeout(180)]

SITE = ROOT / "deploy" / "nginx.conf"
MAX_BODY_BYTES = 512 * 1024 * 1024  # the site's client_max_body_size, 512m
LOGIN_RATE = 2  # per minute, per server process (each keeps its own count)


def nginx_program() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def substitute(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key replaced; every key must be there, so the site and this test agree."""
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx running ``deploy/nginx.conf`` from a temporary prefix, as this test's own process."""

    def __init__(self, upstream_ports: list[int]):
        self.prefix = Path(tempfile.mkdtemp(prefix="bokehsite-nginx-"))
        self.http_port, self.https_port = free_port(), free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}/"
        self.https_url = f"https://127.0.0.1:{self.https_port}/"
        self.certificate = self.prefix / "site.crt"
        key = self.prefix / "site.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(self.certificate)],
                       check=True, capture_output=True, timeout=60)
        site = substitute(SITE.read_text(), {
            "server 127.0.0.1:5006;": "\n    ".join(f"server 127.0.0.1:{port};" for port in upstream_ports),
            "listen 80;": f"listen 127.0.0.1:{self.http_port};",
            "listen [::]:80;": "",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
            "listen [::]:443 ssl http2;": "",
            "return 301 https://$host$request_uri;": f"return 301 https://$host:{self.https_port}$request_uri;",
            "/etc/ssl/certs/bokehsite.crt": str(self.certificate),
            "/etc/ssl/private/bokehsite.key": str(key),
        })
        (self.prefix / "site.conf").write_text(site)
        # nginx makes these for its workers, which run as `nobody` when it starts as root: they
        # spool large answers there (a fetch of the pushed document does).
        temp = {name: self.prefix / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        self.prefix.chmod(0o755)
        # What /etc/nginx/nginx.conf gives a site: an http block that includes it.
        (self.prefix / "nginx.conf").write_text(f"""
worker_processes 1;
error_log {self.prefix / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$remote_addr "$request" $status $upstream_addr';
    access_log {self.prefix / 'access.log'} upstream;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};
    include {self.prefix / 'site.conf'};
}}
""")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        command = [nginx_program(), "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                   "-e", str(self.prefix / "error.log"), "-g", f"daemon off; pid {self.prefix / 'nginx.pid'};"]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30, check=False)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.http_port, 30, self.process, self.output)
        wait_for_port(self.https_port, 30, self.process, self.output)
        return self

    def output(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


@contextmanager
def proxied_cluster() -> Iterator[tuple[Nginx, list[DaphneServer]]]:
    with faults.services() as (_, _, env), ExitStack() as stack:
        env = {**env, "BOKEHSITE_MULTI_USER": "1", "BOKEHSITE_TRUSTED_PROXIES": "1", "BOKEHSITE_HTTPS": "1",
               "BOKEHSITE_MAX_BODY_BYTES": str(MAX_BODY_BYTES), "BOKEHSITE_LOGIN_RATE": f"{LOGIN_RATE}/min"}
        servers = [DaphneServer(env=env).launch() for _ in range(2)]
        for server in servers:
            stack.callback(server.stop)
            server.wait_listening()
        nginx = Nginx([server.port for server in servers])
        stack.callback(nginx.stop)  # also if it fails to start
        nginx.start()
        yield nginx, servers
        assert not re.search(r"\[(error|crit|alert|emerg)\]", nginx.output()), nginx.output()[-3000:]
        for server in servers:
            assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.fixture(scope="module")
def proxied():
    missing = faults.missing_programs() + ([] if nginx_program() else ["nginx"])
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the reverse-proxy tests need {' and '.join(missing)}")
        pytest.skip(f"the reverse-proxy tests need {' and '.join(missing)}")
    with proxied_cluster() as running:
        yield running


@pytest.fixture
def nginx(proxied, monkeypatch, tmp_path):
    """The running nginx; this test's HTTP and websocket clients trust its certificate."""
    nginx, _ = proxied
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(nginx.certificate))  # requests
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.certificate))  # websockets, through ssl's default context
    monkeypatch.setenv("HOME", str(tmp_path))  # logins the client saves
    return nginx


class FromAddress(HTTPAdapter):
    """Connections from another loopback address (127.0.0.2, ...): another client, to nginx."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str) -> requests.Session:
    http = requests.Session()
    http.mount("https://", FromAddress(address))
    return http


def account(nginx: Nginx, username: str) -> str:
    """A new account's API token, registered through nginx."""
    response = requests.post(nginx.https_url + "api/auth/register/", json={"username": username, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["token"]


def test_the_sites_body_limit_is_the_servers_default():
    from django.conf import settings

    assert re.search(r"^\s*client_max_body_size 512m;", SITE.read_text(), re.MULTILINE)
    assert settings.BOKEHSITE_MAX_BODY_BYTES == MAX_BODY_BYTES == 512 * 1024 * 1024


def test_http_is_redirected_once_to_https_which_carries_hsts(nginx):
    response = requests.get(nginx.http_url + "accounts/login/?next=/", timeout=30)
    assert [(r.status_code, r.headers["Location"]) for r in response.history] == [
        (301, nginx.https_url + "accounts/login/?next=/")]
    assert response.status_code == 200 and response.url == nginx.https_url + "accounts/login/?next=/"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    # Over HTTPS nothing redirects, even if the client claims to have come by HTTP: nginx overwrites it.
    direct = requests.get(nginx.https_url + "accounts/login/", headers={"X-Forwarded-Proto": "http"}, timeout=30)
    assert direct.history == [] and direct.status_code == 200
    assert "Strict-Transport-Security" in direct.headers
    # Load balancers probe over plain HTTP.
    health = requests.get(nginx.http_url + "healthz", allow_redirects=False, timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def line(n: int, title: str) -> BokehDocument:
    p = figure(width=400, height=300)
    source = ColumnDataSource({"x": np.arange(n, dtype=float), "y": np.random.default_rng(1).random(n)},
                              name="ex_source")
    p.line("x", "y", source=source)
    doc = BokehDocument(title=title)
    doc.add_root(p)
    return doc


def test_a_large_push_and_live_changes_go_through_to_a_follower(nginx):
    token = account(nginx, "wes")
    session = Session(nginx.https_url, token)
    session.use_doc("through nginx")
    points = 400_000  # two float64 columns: 6.4 MB in one request
    doc = line(points, "through nginx")
    session.push(doc)

    async def follow() -> dict:
        async with Follower(Session(nginx.https_url, token), "through nginx") as follower:
            assert len(follower.doc.get_model_by_name("ex_source").data["x"]) == points
            source = doc.get_model_by_name("ex_source")
            more = 300_000  # 4.8 MB in one websocket message, each way
            source.stream({"x": np.arange(points, points + more, dtype=float), "y": np.ones(more)})
            version = (await asyncio.to_thread(session.push))["version"]
            await follower.wait_for(version, timeout=60)
            return dict(follower.doc.get_model_by_name("ex_source").data)

    data = asyncio.run(follow())
    assert len(data["x"]) == 700_000 and data["x"][-1] == 699_999.0 and data["y"][-1] == 1.0
    stored, _ = session.fetch("through nginx")
    assert len(stored.get_model_by_name("ex_source").data["x"]) == 700_000
    session.close()


def test_the_login_limit_counts_the_address_nginx_saw_not_the_one_a_client_wrote(nginx):
    account(nginx, "lena")
    url = nginx.https_url + "api/auth/login/"

    def login(http: requests.Session, password: str, forwarded_for: str | None = None) -> int:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return http.post(url, json={"username": "lena", "password": password}, headers=headers, timeout=30).status_code

    guesser = client_from("127.0.0.2")
    # nginx spreads requests over both processes, each with its own count: guess until both refuse.
    answers = []
    while answers[-2:] != [429, 429]:
        assert len(answers) < 4 * LOGIN_RATE, answers
        answers.append(login(guesser, "guess"))
    assert answers.count(401) == 2 * LOGIN_RATE, answers

    # A new address written by the guesser only precedes the one nginx appends: still refused.
    assert [login(guesser, PASSWORD, f"203.0.113.{i}") for i in range(2)] == [429, 429]
    # Another client, through the same nginx (the same socket peer for the server), is let in.
    assert login(client_from("127.0.0.3"), PASSWORD) == 200


def test_the_staff_health_page_counts_the_websockets_of_both_processes(nginx, proxied):
    _, servers = proxied
    env = servers[0].env
    created = subprocess.run(
        [sys.executable, "-m", "bokehsite.cli", "createuser", "olga", "--staff", "--database-url", env["DATABASE_URL"],
         "--data-dir", env["BOKEHSITE_DATA_DIR"]],
        input=PASSWORD + "\n", env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert created.returncode == 0, created.stderr
    staff = requests.Session()
    staff.get(nginx.https_url + "accounts/login/", timeout=30)
    logged_in = staff.post(nginx.https_url + "accounts/login/", timeout=30,
                           data={"username": "olga", "password": PASSWORD, "next": "/admin/health/",
                                 "csrfmiddlewaretoken": staff.cookies["csrftoken"]},
                           headers={"Referer": nginx.https_url + "accounts/login/"})
    assert logged_in.status_code == 200 and logged_in.url == nginx.https_url + "admin/health/", logged_in.text[-2000:]

    def connections() -> list[int]:
        page = staff.get(nginx.https_url + "admin/health/", timeout=30)
        assert page.status_code == 200
        return sorted(int(n) for n in re.findall(r'<td class="connections">(\d+)</td>', page.text) if n != "0")

    token = account(nginx, "vic")
    Session(nginx.https_url, token).push_document(line(10, "watched"), "watched")

    async def watch() -> None:
        followers: list[Follower] = []
        try:
            # Each process counts its own; the page, served by either, adds the other's from the
            # database. Followers are added until nginx has given both Daphnes some.
            while len(counted := await asyncio.to_thread(connections)) < 2:
                assert len(followers) < 8, counted
                followers.append(await Follower(Session(nginx.https_url, token), "watched").__aenter__())
                await asyncio.to_thread(wait_until, lambda: sum(connections()) == len(followers), 30)
                # nginx takes turns by request, and a follower makes an even number of them with
                # the page's: one more sends the next follower's websocket to the other Daphne.
                await asyncio.to_thread(requests.get, nginx.https_url + "healthz", timeout=30)
            assert sum(counted) == len(followers)
        finally:
            for follower in followers:
                await follower.__aexit__(None, None, None)

    asyncio.run(watch())
    wait_until(lambda: connections() == [], 30)
