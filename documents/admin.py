from collections import Counter

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from bokehsite.wire import model_objects
from documents import embeds
from documents.models import Collaborator, Document, EmbedToken, GroupShare


class CollaboratorInline(admin.TabularInline):
    model = Collaborator
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created"]
    readonly_fields = ["created"]


class GroupShareInline(admin.TabularInline):
    model = GroupShare
    extra = 1
    autocomplete_fields = ["group"]
    fields = ["group", "role", "created"]
    readonly_fields = ["created"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    inlines = [CollaboratorInline, GroupShareInline]
    list_display = ["title", "owner", "visibility", "version", "updated"]
    list_filter = ["visibility"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = ["id", "version", "created", "updated", "models", "size"]
    fields = ["id", "title", "owner", "visibility", "version", "created", "updated", "models", "size"]

    def save_model(self, request, obj: Document, form, change: bool) -> None:
        if "visibility" in form.changed_data:
            obj.set_visibility(obj.visibility)  # the secret link's key follows the visibility
        super().save_model(request, obj, form, change)

    @admin.display(description="Bokeh models")
    def models(self, document: Document) -> str:
        snapshot = document.snapshots.defer("buffers").first()
        counts = Counter(obj.get("name") for obj in model_objects(snapshot.doc)) if snapshot else Counter()
        return ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.most_common())

    @admin.display(description="Stored size")
    def size(self, document: Document) -> str:
        snapshots = document.snapshots.values_list("buffers", flat=True)
        events = document.events.count()
        return f"{filesizeformat(sum(len(b) for b in snapshots))} in {len(snapshots)} snapshot(s), {events} logged change(s)"


@admin.register(EmbedToken)
class EmbedTokenAdmin(admin.ModelAdmin):
    """Embed tokens of every document; revoking one stops the pages that show it."""

    list_display = ["prefix", "document", "name", "origins", "expires", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["prefix", "name", "document__title", "document__owner__username"]
    list_select_related = ["document"]
    readonly_fields = ["id", "document", "prefix", "created"]
    fields = ["id", "document", "name", "prefix", "origins", "created", "expires", "revoked"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # made by owners, with a secret shown once

    @admin.action(description="Revoke the selected embed tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset.filter(revoked__isnull=True):
            embeds.revoke(token)
