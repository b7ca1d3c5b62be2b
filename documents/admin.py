from collections import Counter

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from bokehsite.client.wire import model_objects
from documents.models import Collaborator, Document


class CollaboratorInline(admin.TabularInline):
    model = Collaborator
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created"]
    readonly_fields = ["created"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    inlines = [CollaboratorInline]
    list_display = ["title", "owner", "visibility", "version", "updated"]
    list_filter = ["visibility"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = ["id", "version", "created", "updated", "models", "size"]
    fields = ["id", "title", "owner", "visibility", "version", "created", "updated", "models", "size"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("buffers")

    @admin.display(description="Bokeh models")
    def models(self, document: Document) -> str:
        counts = Counter(obj.get("name") for obj in model_objects(document.doc))
        return ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.most_common())

    @admin.display(description="Stored size")
    def size(self, document: Document) -> str:
        return filesizeformat(len(document.buffers)) + " of arrays"
