from django.urls import reverse
from rest_framework import serializers

from documents.models import Document


class DocumentSerializer(serializers.ModelSerializer):
    """A document's metadata; its content travels separately, as a binary bundle."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    url = serializers.SerializerMethodField(help_text="The plot page.")
    doc_url = serializers.SerializerMethodField(help_text="The content, as a bundle.")

    class Meta:
        model = Document
        fields = ["id", "title", "owner", "visibility", "version", "created", "updated", "url", "doc_url"]
        read_only_fields = ["id", "owner", "visibility", "version", "created", "updated"]
        extra_kwargs = {"title": {"validators": []}}  # uniqueness is the service's to answer (409)

    def get_url(self, document: Document) -> str:
        return self.context["request"].build_absolute_uri(document.get_absolute_url())

    def get_doc_url(self, document: Document) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:document-doc", args=[document.id]))


class TitleSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, trim_whitespace=True)


class ContentSerializer(serializers.Serializer):
    """A document body: Bokeh's document JSON, whose arrays may refer to the bundle's buffers."""

    doc = serializers.JSONField()


class CreateSerializer(TitleSerializer, ContentSerializer):
    pass


class PatchSerializer(serializers.Serializer):
    """A change: Bokeh's PATCH-DOC content, optionally only for one base version."""

    patch = serializers.JSONField()
    base_version = serializers.IntegerField(min_value=0, required=False, allow_null=True)


class VersionQuerySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, required=False)


class SinceQuerySerializer(serializers.Serializer):
    since = serializers.IntegerField(min_value=0)
    limit = serializers.IntegerField(min_value=1, max_value=10_000, default=1000)
