from django.urls import reverse
from rest_framework import serializers

from documents import services
from documents.models import Collaborator, Document, EmbedToken, GroupShare, Role, Visibility


class DocumentSerializer(serializers.ModelSerializer):
    """A document's metadata; its content travels separately, as a binary bundle."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    url = serializers.SerializerMethodField(help_text="The plot page.")
    doc_url = serializers.SerializerMethodField(help_text="The content, as a bundle.")
    role = serializers.SerializerMethodField(help_text="The caller's role: read, write or owner.")
    public_url = serializers.SerializerMethodField(help_text="The public link, while the document is public.")
    secret_url = serializers.SerializerMethodField(help_text="The secret link (owners only), while there is one.")

    class Meta:
        model = Document
        fields = ["id", "title", "owner", "visibility", "version", "created", "updated", "url", "doc_url",
                  "role", "public_url", "secret_url"]
        read_only_fields = ["id", "owner", "visibility", "version", "created", "updated"]
        extra_kwargs = {"title": {"validators": []}}  # uniqueness is the service's to answer (409)

    def get_url(self, document: Document) -> str:
        return self.context["request"].build_absolute_uri(document.get_absolute_url())

    def get_doc_url(self, document: Document) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:document-doc", args=[document.id]))

    def get_role(self, document: Document) -> str:
        # Listed and newly created documents are the caller's own; services.get_* set the role.
        return getattr(document, "role", "owner")

    def get_public_url(self, document: Document) -> str | None:
        if document.visibility != Visibility.PUBLIC:
            return None
        return self.context["request"].build_absolute_uri(document.public_url())

    def get_secret_url(self, document: Document) -> str | None:
        if document.visibility != Visibility.SECRET or self.get_role(document) != "owner":
            return None
        return self.context["request"].build_absolute_uri(document.secret_url())


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


class TitleQuerySerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False,
                                  help_text="Only the document with this title (empty: every document).")


# Orders a list takes (``services.LIST_ORDERS``), each also reversed with a leading "-".
LIST_SORTS = [name for order in services.LIST_ORDERS for name in (order, "-" + order)]


class DocumentListQuerySerializer(TitleQuerySerializer):
    q = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                              help_text="Only documents whose title holds this, in any case.")
    sort = serializers.ChoiceField(choices=LIST_SORTS, default="updated", help_text=(
        "updated (newest first), created (newest first), title (A to Z) or version (most first); "
        "a leading - reverses the order."))
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100,
                                     help_text="At most this many documents (the `Link` header names the next page).")
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0,
                                      help_text="Skip this many documents first.")


class VersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version the change was stored as.")


class VersionQuerySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, required=False)


class SinceQuerySerializer(serializers.Serializer):
    """``since`` is a version the client has: from 1 (the version a document is created at) up
    to the document's current version, given as ``context["current"]``."""

    since = serializers.IntegerField(min_value=1, error_messages={
        "min_value": "must be a version you have (1 or more); with nothing yet, load the document "
                     "first (GET /api/documents/<id>/doc/), then ask for the changes after its version",
    })
    limit = serializers.IntegerField(min_value=1, max_value=10_000, default=1000)

    def validate_since(self, since: int) -> int:
        current = self.context["current"]
        if since > current:
            raise serializers.ValidationError(f"version {since} does not exist yet; the document is at version {current}")
        return since


class ShareSerializer(serializers.Serializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices)


class CollaboratorSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.READ)

    class Meta:
        model = Collaborator
        fields = ["username", "role", "created"]
        read_only_fields = ["created"]


class GroupShareSerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="group.name", max_length=150, help_text="The group's name.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.READ)

    class Meta:
        model = GroupShare
        fields = ["group", "role", "created"]
        read_only_fields = ["created"]


# --- embeds ----------------------------------------------------------------------------------


class EmbedTokenSerializer(serializers.ModelSerializer):
    """An embed token, never its secret."""

    active = serializers.BooleanField(source="is_active", read_only=True, help_text="Neither revoked nor expired.")

    class Meta:
        model = EmbedToken
        fields = ["id", "name", "prefix", "origins", "created", "expires", "revoked", "active"]
        read_only_fields = fields


class NewEmbedTokenSerializer(EmbedTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, for autoload.js?embed_token=; shown only now.")
    autoload_url = serializers.CharField(read_only=True, help_text="The script's URL with the token in it.")

    class Meta(EmbedTokenSerializer.Meta):
        fields = [*EmbedTokenSerializer.Meta.fields, "token", "autoload_url"]
        read_only_fields = fields


class CreateEmbedTokenSerializer(serializers.Serializer):
    origins = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=1, max_length=20,
        help_text="The origins whose pages may show the document, e.g. [\"https://example.org\"].")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    expires = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                        help_text="When it stops working (default: in 30 days; at most a year).")
    expires_in_days = serializers.IntegerField(min_value=1, max_value=366, required=False, allow_null=True, default=None)

# --- history ---------------------------------------------------------------------------------


class HistoryQuerySerializer(serializers.Serializer):
    before = serializers.IntegerField(min_value=1, required=False,
                                      help_text="Only versions below this one (the previous page's `next`).")
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)


class HistoryItemSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["create", "change", "replace", "restore"],
                                   help_text="How this version came: created, a change, a whole replace, or a restore.")
    created = serializers.DateTimeField()
    author = serializers.CharField(allow_null=True, help_text="Who made it (null once their account is gone).")
    size = serializers.IntegerField(help_text="Bytes of JSON and buffers the version's change holds.")
    restored_from = serializers.IntegerField(allow_null=True, help_text="For a restore: the version it brought back.")


class HistorySerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The document's current version.")
    oldest = serializers.IntegerField(help_text="The oldest version still held; older ones were pruned.")
    retention = serializers.IntegerField(help_text="How many versions back the server keeps (BOKEHSITE_HISTORY).")
    pruned = serializers.BooleanField(help_text="Whether versions before `oldest` were pruned.")
    items = HistoryItemSerializer(many=True)
    next = serializers.IntegerField(allow_null=True, help_text="`before` for the next page; null on the last.")


class RestoreSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version to bring back as a new version.")

    def validate_version(self, version: int) -> int:
        current = self.context["current"]
        if version > current:
            raise serializers.ValidationError(f"version {version} does not exist yet; the document is at version {current}")
        return version


# --- exports -----------------------------------------------------------------------------------


class ExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["html", "json", "png", "svg"], default="html", help_text=(
        "html: a standalone page, BokehJS inline, that opens from disk; json: Bokeh's document JSON; "
        "png, svg: drawn by headless Chromium (501 where the server has none)."))
    version = serializers.IntegerField(min_value=1, required=False, help_text="An earlier version (default: the current one).")


class AccountExportQuerySerializer(serializers.Serializer):
    history = serializers.BooleanField(default=False, help_text="Also each document's snapshots and change log.")


class AccountImportQuerySerializer(serializers.Serializer):
    on_conflict = serializers.ChoiceField(choices=["rename", "skip", "replace"], required=False, help_text=(
        "What to do with a document whose title you already have: store it as 'title (imported)', "
        "leave it out, or store it as a new version of yours. Without it, a clash answers 409."))


class ImportedSerializer(serializers.Serializer):
    title = serializers.CharField()
    id = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=["created", "renamed", "skipped", "replaced"])
