"""The admin's pages of hosted apps: hosts and sessions listed read-only, sessions ended on
request (their host told), and the served apps listed."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from appserver import catalog
from appserver.models import AppHost, AppSession
from documents import bokeh_json, services
from documents.models import Document, Kind
from tests.conftest import make_user
from tests.helpers import line_document

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def staff(client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


@pytest.fixture
def served(settings, tmp_path):
    app = tmp_path / "sliders.py"
    app.write_text("from bokeh.io import curdoc\n")
    settings.BOKEHSITE_APPS = [str(app)]
    catalog.apps.cache_clear()
    yield app
    catalog.apps.cache_clear()


def running_session(user, host: AppHost | None = None, app: str = "sliders") -> AppSession:
    document = services.create_document(user, f"{app} session", *bokeh_json.dump(line_document()), kind=Kind.SESSION,
                                        secret_key="k" * 32)
    return AppSession.objects.create(app=app, user=user, document=document, host=host,
                                     state=AppSession.State.RUNNING)


def test_the_admin_lists_hosts_and_sessions_and_cannot_edit_them(staff, alice, served):
    host = AppHost.objects.create(id="6f0b1a3e-1f0c-4a36-9c43-1d1d51b0a001", channel_name="", pid=4242,
                                  machine="box-1", apps=["sliders"], renewed=timezone.now())
    session = running_session(alice, host)
    hosts = staff.get("/admin/appserver/apphost/").content.decode()
    assert "box-1" in hosts and "4242" in hosts and "sliders" in hosts
    sessions = staff.get("/admin/appserver/appsession/")
    page = sessions.content.decode()
    assert "alice" in page and "box-1" in page and "End the selected sessions" in page
    assert 'id="served-apps"' in page and str(served) in page and "anyone" in page
    assert staff.get("/admin/appserver/apphost/add/").status_code == 403
    assert staff.get(f"/admin/appserver/appsession/{session.id}/delete/").status_code == 403
    detail = staff.get(f"/admin/appserver/appsession/{session.id}/change/").content.decode()
    assert 'name="_save"' not in detail  # view only


@pytest.mark.django_db(transaction=True)  # ending asks the host from a thread of its own, as in production
def test_ending_sessions_in_the_admin_tells_their_host_and_deletes_their_documents(staff, alice, bob, served):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    host = AppHost.objects.create(id="6f0b1a3e-1f0c-4a36-9c43-1d1d51b0a002", channel_name=channel, pid=1,
                                  machine="box-2", apps=["sliders"], renewed=timezone.now())
    ended, kept = running_session(alice, host), running_session(bob, host)
    response = staff.post("/admin/appserver/appsession/", {"action": "end_sessions", "_selected_action": [str(ended.id)]},
                          follow=True)
    assert "Ended 1 session(s)." in response.content.decode()
    assert list(AppSession.objects.all()) == [kept]
    assert not Document.objects.filter(pk=ended.document_id).exists()
    assert async_to_sync(layer.receive)(channel) == {"type": "app.end", "session": str(ended.id)}


def test_the_admin_pages_of_apps_are_for_staff_only(client, alice):
    client.force_login(alice)
    assert client.get("/admin/appserver/appsession/").status_code == 302
