"""Who watches an app session: each browser connection is a row its server process renews; the
rows of a process that died stop counting, so its sessions end once unused."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from appserver import presence, sessions
from appserver.models import AppHost, AppSession, Viewer

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(settings):
    settings.BOKEHSITE_UNUSED_SESSION_LIFETIME = 1
    host = AppHost.objects.create(id=uuid.uuid4(), channel_name="x", pid=1, machine="m", apps=["a"], renewed=timezone.now())
    opened = AppSession.objects.create(app="a", host=host, state=AppSession.State.RUNNING)
    long_ago = timezone.now() - timedelta(hours=1)
    AppSession.objects.filter(id=opened.id).update(started=long_ago, last_active=long_ago)
    return opened


def watch(session, renewed):
    return Viewer.objects.create(session=session, channel_name=uuid.uuid4().hex, process=uuid.uuid4(), renewed=renewed)


def test_a_session_with_a_renewed_viewer_is_in_use(session):
    watch(session, timezone.now())
    assert sessions.unused(session.host_id) == []
    assert presence.viewers(session) == 1


def test_the_viewers_of_a_process_that_stopped_renewing_count_no_more(session):
    watch(session, timezone.now() - presence.viewer_lease() - timedelta(seconds=1))
    assert [s.id for s in sessions.unused(session.host_id)] == [session.id]
    assert presence.viewers(session) == 0


def test_a_session_no_one_watched_for_its_lifetime_is_unused_and_a_recent_one_is_not(session):
    assert [s.id for s in sessions.unused(session.host_id)] == [session.id]
    AppSession.objects.filter(id=session.id).update(last_active=timezone.now())
    assert sessions.unused(session.host_id) == []
