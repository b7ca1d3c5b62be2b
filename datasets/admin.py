from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from datasets import services
from datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Lists and deletes datasets; deleting removes their files."""

    list_display = ["name", "owner", "state", "length", "size", "x_sorted", "updated"]
    list_filter = ["state", "x_sorted"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    fields = ["id", "name", "owner", "state", "length", "columns", "x_column", "x_min", "x_max", "x_sorted", "bytes",
              "created", "updated"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # datasets come by upload

    @admin.display(description="Size on disk", ordering="bytes")
    def size(self, dataset: Dataset) -> str:
        return filesizeformat(dataset.bytes)

    def delete_model(self, request, obj: Dataset) -> None:
        services.delete_dataset(obj)

    def delete_queryset(self, request, queryset) -> None:
        for dataset in queryset:
            services.delete_dataset(dataset)
