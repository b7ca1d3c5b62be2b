"""App hosts (the processes that run apps' Python) and the live sessions they run."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class AppHost(models.Model):
    """An app host process connected to one of the server's processes: where its control
    socket's consumer hears the channel layer (``channel_name``), and until when it is known to
    be alive (``renewed`` plus ``BOKEHSITE_GROUP_EXPIRY``)."""

    id = models.UUIDField(primary_key=True, editable=False)  # the host's own, for its whole life
    channel_name = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    machine = models.CharField(max_length=200)
    apps = models.JSONField(default=list)
    started = models.DateTimeField(auto_now_add=True)
    renewed = models.DateTimeField()
    memory = models.PositiveBigIntegerField(default=0)  # resident bytes, as it last reported
    # False once it takes no new sessions (past its memory limit, or with a callback it could not
    # stop): it is recycled when its last session has ended.
    accepting = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.machine}:{self.pid}"


class AppSession(models.Model):
    """One page's session of an app: its Python runs on ``host``; its document is an ordinary
    stored document (kind "session") owned by the viewer, seen by the key only its page holds.
    The row lives while the session does."""

    class State(models.TextChoices):
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.CharField(max_length=100)
    # Who opened it (None: an anonymous visitor of a public app).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="app_sessions")
    document = models.OneToOneField("documents.Document", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="app_session")
    host = models.ForeignKey(AppHost, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions")
    state = models.CharField(max_length=16, choices=State.choices, default=State.STARTING)
    # What ``session_context.request`` shows the app: arguments, cookies, headers, the user.
    request = models.JSONField(default=dict)
    started = models.DateTimeField(auto_now_add=True)
    last_active = models.DateTimeField(auto_now_add=True)  # opened, or a viewer came or went

    class Meta:
        ordering = ["-started"]
        indexes = [models.Index(fields=["host", "last_active"])]

    def __str__(self) -> str:
        return f"{self.app} {str(self.id)[:8]}"


class Viewer(models.Model):
    """A browser connection to a session's document, in the server process ``process``, which
    renews ``renewed`` while it lives (``appserver.presence``)."""

    session = models.ForeignKey(AppSession, on_delete=models.CASCADE, related_name="viewer_rows")
    channel_name = models.CharField(max_length=200, unique=True)
    process = models.UUIDField(db_index=True)
    renewed = models.DateTimeField()
