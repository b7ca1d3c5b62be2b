"""The admin's view of hosted apps: the app hosts running now, the live sessions (which an admin
may end), and the apps this server serves. All of it is the running state, so none of it is
edited here: hosts and sessions come and go with their processes and pages."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.db.models import Count

from appserver import catalog, dispatch, presence
from appserver.loading import AppLoadError
from appserver.models import AppHost, AppSession


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a row goes when its process or page does (sessions: "End the selected sessions")


@admin.register(AppHost)
class AppHostAdmin(ReadOnly):
    list_display = ["machine", "pid", "app_names", "sessions", "memory_mib", "accepting", "started", "renewed"]
    fields = ["id", "machine", "pid", "apps", "channel_name", "memory", "accepting", "started", "renewed"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(session_count=Count("sessions"))

    @admin.display(description="Apps")
    def app_names(self, host: AppHost) -> str:
        return ", ".join(host.apps)

    @admin.display(description="Memory (MiB)", ordering="memory")
    def memory_mib(self, host: AppHost) -> int:
        return round(host.memory / 2**20)

    @admin.display(description="Sessions", ordering="session_count")
    def sessions(self, host: AppHost) -> int:
        return host.session_count


@admin.register(AppSession)
class AppSessionAdmin(ReadOnly):
    list_display = ["app", "user", "state", "started", "last_active", "viewers", "host"]
    list_filter = ["app", "state"]
    search_fields = ["app", "user__username"]
    list_select_related = ["user", "host"]
    fields = ["id", "app", "user", "state", "document", "host", "started", "last_active", "viewers", "request"]
    actions = ["end_sessions"]

    @admin.display(description="viewers")
    def viewers(self, session: AppSession) -> int:
        return presence.viewers(session)

    @admin.action(description="End the selected sessions")
    def end_sessions(self, request, queryset) -> None:
        ended = 0
        for session in queryset.select_related("host", "document"):
            async_to_sync(dispatch.end)(session, reason="an administrator ended it")  # its host runs the app's hooks and lets it go
            ended += 1
        self.message_user(request, f"Ended {ended} session(s).", messages.SUCCESS)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "served_apps": served_apps()})


def served_apps() -> list[dict]:
    """The apps of ``BOKEHSITE_APPS``, with who may open them and how many sessions each runs."""
    try:
        specs = catalog.apps()
    except AppLoadError as e:
        return [{"name": "?", "path": str(e), "public": False, "sessions": 0}]
    running = dict(AppSession.objects.values_list("app").annotate(n=Count("id")))
    return [{"name": name, "path": str(spec.path), "public": catalog.is_public(name), "sessions": running.get(name, 0)}
            for name, spec in specs.items()]
