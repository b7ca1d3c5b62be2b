"""The staff's health page, /admin/health/: every section for staff, 403 for other accounts, the
login page for anyone not logged in."""

import re
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from appserver.models import AppHost, AppSession
from bokehsite import operators
from datasets.models import Dataset
from documents import quota
from streaming.models import ConnectionPlace, ServerProcess
from tests.conftest import CHROMIUM, PASSWORD, make_user, token_client
from tests.helpers import store, upload_dataset

pytestmark = pytest.mark.django_db

URL = "/admin/health/"
SECTIONS = ["versions", "processes", "app-hosts", "database", "channel-layer", "chromium", "disk"]


def section(html: str, name: str) -> str:
    found = re.search(rf'<div class="module" id="{name}">(.*?)</div>', html, re.DOTALL)
    assert found, f"no {name} section"
    return found.group(1)


@pytest.fixture
def staff(db):
    return make_user("sam", password=PASSWORD, is_staff=True)


def elsewhere():
    """What other processes leave in the database: a server process holding two websockets (and
    one whose lease lapsed), and an app worker running a session (renewed just now)."""
    other = ServerProcess.objects.create(id=uuid.uuid4(), expires=timezone.now() + timedelta(seconds=60))
    dead = ServerProcess.objects.create(id=uuid.uuid4(), expires=timezone.now() - timedelta(seconds=1))
    for number in range(2):
        ConnectionPlace.objects.create(holder="user:1", number=number, process=other.id)
    ConnectionPlace.objects.create(holder="user:2", number=0, process=dead.id)
    host = AppHost.objects.create(id=uuid.uuid4(), channel_name="specific.abc!def", pid=4242, machine="apps-1",
                                  apps=["sliders"], renewed=timezone.now(), memory=300 * 2**20)
    AppSession.objects.create(app="sliders", host=host)
    return other, dead


def test_staff_see_every_section(client, staff, alice):
    store(alice, "a line")
    upload_dataset(token_client(alice), "points", {"x": np.arange(1000.0), "y": np.ones(1000)})
    client.force_login(staff)
    other, dead = elsewhere()

    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    for name in SECTIONS:
        section(html, name)

    versions = section(html, "versions")
    for name in ("bokehsite", "Django", "Bokeh", "Python"):
        assert f"<th>{name}</th>" in versions
    assert re.search(r"<th>Database</th><td>(SQLite|PostgreSQL) \d+", versions)

    processes = section(html, "processes")
    assert str(other.id) in processes and str(dead.id) not in processes
    assert re.search(rf"{other.id}</td>\s*<td class=\"connections\">2</td>", processes)
    assert "(this one)" in processes  # with this process's pid and memory
    hosts = section(html, "app-hosts")
    assert "apps-1" in hosts and "4242" in hosts and "sliders" in hosts and "300.0" in hosts
    assert re.search(r"<td>sliders</td>\s*<td>1</td>", hosts)  # one session

    assert re.search(r"yes, <code>SELECT 1</code> in [\d.]+ ms", section(html, "database"))
    assert "<td>ok</td>" in section(html, "channel-layer")
    assert "Version" in section(html, "chromium") and "Thumbnails" in section(html, "chromium")

    disk = section(html, "disk")
    stored = operators.disk()["stored"]
    assert stored["documents"] == quota.usage(alice.id).used > 0
    assert stored["datasets"] == Dataset.objects.get().bytes >= 16000
    assert filesizeformat(stored["documents"]) in disk and filesizeformat(stored["datasets"]) in disk
    assert "Free in the data directory" in disk


def test_another_account_is_refused(client, alice):
    client.force_login(alice)
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize("mode", ["single-user", "multi-user"])
def test_anyone_not_logged_in_is_sent_to_log_in(client, settings, mode):
    # Even in single-user mode, where every page acts as the default user, this page needs a login.
    settings.BOKEHSITE_MULTI_USER = mode == "multi-user"
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={URL}"



@pytest.mark.browser
@pytest.mark.django_db(transaction=True)  # the renderer's answers come on a thread of their own
def test_the_chromium_section_shows_the_renderer_once_it_has_drawn(client, staff, alice):
    from documents import images, services

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    images.stop()
    try:
        b"".join(services.export_document(store(alice, "drawn"), "png")[1])
        client.force_login(staff)
        chromium = section(client.get(URL).content.decode(), "chromium")
        assert f"running (PID {images.status()['pid']}, 1 drawing so far)" in chromium
        assert re.search(r"<th>Version</th><td>Chromium \d+\.", chromium)
    finally:
        images.stop()


def test_a_missing_chromium_is_named(client, staff, settings):
    settings.BOKEHSITE_CHROMIUM = "/nonexistent/chromium"
    client.force_login(staff)
    chromium = section(client.get(URL).content.decode(), "chromium")
    assert "/nonexistent/chromium (missing)" in chromium and "no Chromium at /nonexistent/chromium" in chromium
    assert "not drawn" in chromium


def test_the_admin_index_links_to_it(client, db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    html = client.get("/admin/").content.decode()
    assert f'<a href="{URL}" class="section">Server health</a>' in html
    assert 'class="app-auth module' in html  # the apps are still listed
