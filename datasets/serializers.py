from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bokehsite.protocol import MAX_SERIES
from datasets.models import Dataset
from datasets.services import MAX_COLUMN_NAME, MAX_COLUMNS

MAX_ROWS = 2 ** 53  # exact as a JSON number anywhere


class ColumnSpecSerializer(serializers.Serializer):
    """A column of an upload: its name, dtype and number of rows."""

    name = serializers.CharField(max_length=MAX_COLUMN_NAME, trim_whitespace=False)
    dtype = serializers.CharField(max_length=32, help_text="bool, int8 to int64, uint8 to uint64, float32, float64, "
                                                           "or datetime64[unit] (sent as int64).")
    length = serializers.IntegerField(min_value=1, max_value=MAX_ROWS, help_text="Rows.")


class ImageSpecSerializer(serializers.Serializer):
    """An image: its one column ``image`` holds ``length`` rows of ``width`` pixels, row 0 at the bottom."""

    width = serializers.IntegerField(min_value=1, max_value=2 ** 31, help_text="Pixels a row.")
    extent = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4,
                                   help_text="[x0, x1, y0, y1]: the outer edges of the image's pixels.")


class UploadCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    columns = serializers.ListField(child=ColumnSpecSerializer(), min_length=1, max_length=MAX_COLUMNS)
    x = serializers.CharField(max_length=MAX_COLUMN_NAME, trim_whitespace=False, required=False, allow_null=True,
                              help_text="The x column; default: the first.")
    require_sorted_x = serializers.BooleanField(default=False, help_text="Refuse the upload at finish unless x is "
                                                                         "sorted (a line needs it).")
    image = ImageSpecSerializer(required=False, help_text="An image: one column, 'image', of its rows of pixels.")


class UploadColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField()
    bytes = serializers.IntegerField(help_text="Bytes the column takes: its rows times the dtype's size.")
    received_bytes = serializers.IntegerField()
    missing_chunks = serializers.IntegerField(help_text="How many chunks have not been received.")
    missing = serializers.ListField(child=serializers.IntegerField(),
                                    help_text="Offsets of the chunks not received (the first 1000 of the "
                                                      "upload, column by column).")


class UploadSerializer(serializers.Serializer):
    """An upload in progress and what it has received."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    length = serializers.IntegerField()
    x = serializers.CharField()
    require_sorted_x = serializers.BooleanField()
    chunk_bytes = serializers.IntegerField(help_text="Each chunk holds this many bytes of one column (the last less), "
                                                     "from an offset that is a multiple of it.")
    columns = UploadColumnSerializer(many=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class ChunkQuerySerializer(serializers.Serializer):
    column = serializers.CharField(max_length=MAX_COLUMN_NAME, trim_whitespace=False)
    offset = serializers.IntegerField(min_value=0, max_value=2 ** 62, help_text="Byte offset in the column.")
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}\Z", help_text="The SHA-256 of the body, in hex.")


class ChunkSerializer(serializers.Serializer):
    column = serializers.CharField()
    offset = serializers.IntegerField()
    bytes = serializers.IntegerField()


class DatasetColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField(help_text="As uploaded: float64, datetime64[ms]...")
    stored_dtype = serializers.CharField(source="dtype", help_text="What the file holds (int64 for datetimes).")
    unit = serializers.CharField(allow_null=True, help_text="The datetime unit, or null.")

    def to_representation(self, column: dict) -> dict:
        unit = column.get("unit")
        return {"name": column["name"], "dtype": f"datetime64[{unit}]" if unit else column["dtype"],
                "stored_dtype": column["dtype"], "unit": unit}


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    columns = DatasetColumnSerializer(many=True, read_only=True)
    x = serializers.CharField(source="x_column", read_only=True)
    url = serializers.SerializerMethodField(help_text="This dataset in the API.")

    class Meta:
        model = Dataset
        fields = ["id", "name", "owner", "kind", "length", "width", "extent", "columns", "x", "x_min", "x_max",
                  "x_sorted", "bytes", "created", "updated", "url"]
        read_only_fields = fields

    def get_url(self, dataset: Dataset) -> str:
        return self.context["request"].build_absolute_uri(reverse("datasets-api:dataset-detail", args=[dataset.id]))


class NameQuerySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="Only the dataset with this name (empty: every dataset).")


class RowsColumnSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_COLUMN_NAME, trim_whitespace=False)
    dtype = serializers.CharField(max_length=32)


class RowsSerializer(serializers.Serializer):
    """The header of an append: column i's new rows are the bundle's buffer i."""

    columns = serializers.ListField(child=RowsColumnSerializer(), min_length=1, max_length=MAX_COLUMNS)


class ViewQuerySerializer(serializers.Serializer):
    """What a first view of a dataset is asked with: how to draw it, at what size, over what range."""

    kind = serializers.ChoiceField(choices=["line", "points", "lines", "image"],
                                   help_text="A line (x sorted), a scatter, many series against one x (sorted), "
                                             "or an image's pixels.")
    reduce = serializers.ChoiceField(choices=["mean", "max"], default="mean",
                                     help_text="An image's pixels shown at a reduced scale: their mean or their max.")
    x = serializers.CharField(max_length=MAX_COLUMN_NAME, required=False, help_text="Default: the dataset's x column.")
    y = serializers.CharField(max_length=MAX_COLUMN_NAME, required=False,
                              help_text="Default: its first other column (for lines, repeat it: every other column).")
    width = serializers.IntegerField(min_value=1, max_value=8192, help_text="Pixels across.")
    height = serializers.IntegerField(min_value=1, max_value=8192, help_text="Pixels down.")
    x0 = serializers.FloatField(required=False, help_text="Default: the dataset's extent (and so for the others).")
    x1 = serializers.FloatField(required=False)
    y0 = serializers.FloatField(required=False)
    y1 = serializers.FloatField(required=False)


@extend_schema_field({"oneOf": [{"type": "string"},
                                 {"type": "array", "items": {"type": "string"}, "maxItems": MAX_SERIES}]})
class ColumnNamesField(serializers.Field):
    """A column's name, or a list of at most ``MAX_SERIES`` of them."""

    def to_internal_value(self, data):
        if isinstance(data, list):
            return serializers.ListField(child=serializers.CharField(max_length=MAX_COLUMN_NAME, trim_whitespace=False),
                                         min_length=1, max_length=MAX_SERIES).run_validation(data)
        return serializers.CharField(max_length=MAX_COLUMN_NAME, trim_whitespace=False).run_validation(data)

    def to_representation(self, value):
        return value


class ViewBodySerializer(ViewQuerySerializer):
    """The same as a JSON body, for views whose columns are too many for a URL (lines)."""

    y = ColumnNamesField(required=False, help_text=f"A column, or for lines a list of at most {MAX_SERIES}; "
                                                   "default: its first other column (for lines, every other one).")
