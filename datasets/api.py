"""The datasets REST API. Views parse and answer; ``datasets.services`` decides."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bokehsite.errors import Unavailable
from bokehsite.openapi import BINARY, BUNDLE, INVALID, raises
from datasets import access, images, services
from datasets.exceptions import (
    BadChunk, ChecksumMismatch, InvalidColumns, InvalidDtype, NameTaken, QuotaExceeded, TooLarge, UnequalLengths,
    UploadIncomplete, XNotSorted,
)
from datasets.parsers import OCTET_STREAM, ChunkParser
from datasets.serializers import (
    ChunkQuerySerializer, ChunkSerializer, DatasetSerializer, NameQuerySerializer, RowsSerializer,
    UploadCreateSerializer, UploadSerializer, ViewBodySerializer, ViewQuerySerializer,
)
from datasets.viewing import InvalidView, first_view
from documents.parsers import BundleParser
from documents.renderers import BundleRenderer, require_bundle


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _dataset(request: Request, dataset) -> Response:
    return Response(DatasetSerializer(dataset, context={"request": request}).data)


@extend_schema(tags=["datasets"])
class DatasetList(APIView):
    """GET: the caller's datasets (``?name=`` filters)."""

    @extend_schema(summary="The caller's datasets", parameters=[NameQuerySerializer],
                   responses=DatasetSerializer(many=True))
    @raises(INVALID)
    def get(self, request: Request) -> Response:
        datasets = services.Dataset.objects.usable_by(request.user).select_related("owner")
        if name := _valid(NameQuerySerializer, request.query_params).get("name"):
            datasets = datasets.filter(name=name)
        return Response(DatasetSerializer(datasets, many=True, context={"request": request}).data)


@extend_schema(tags=["datasets"])
class DatasetDetail(APIView):
    """GET: a dataset's description. DELETE: delete it and its files."""

    @extend_schema(summary="A dataset", responses=DatasetSerializer)
    def get(self, request: Request, pk) -> Response:
        return _dataset(request, access.resolve(request.user, pk))

    @extend_schema(summary="Delete a dataset", responses={204: None})
    def delete(self, request: Request, pk) -> Response:
        services.delete_dataset(access.resolve(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["datasets"])
class DatasetRows(APIView):
    """POST a bundle: rows appended to every column. Its header is ``{"columns": [{"name",
    "dtype"}, ...]}`` and buffer i holds column i's new values (little-endian; datetimes as int64).
    An image takes one column, ``image``, of whole rows of pixels, which go on top of it."""

    parser_classes = [BundleParser]

    @extend_schema(summary="Append rows to a dataset", request={BUNDLE: BINARY}, responses=DatasetSerializer)
    @raises(InvalidColumns, InvalidDtype, UnequalLengths, XNotSorted, TooLarge, QuotaExceeded, Unavailable)
    def post(self, request: Request, pk) -> Response:
        dataset = access.resolve(request.user, pk)
        spec = _valid(RowsSerializer, request.data)["columns"]
        columns = services.rows_from_buffers(spec, getattr(request.data, "buffers", []))
        if dataset.is_image:
            return _dataset(request, images.append(dataset, images.rows_of(dataset, columns)))
        return _dataset(request, services.append(dataset, columns))


@extend_schema(tags=["datasets"])
class DatasetView(APIView):
    """GET: a view of the dataset at a plot's size, as a bundle whose header is a ``view_data``
    message (see the websocket protocol): what ``server_source`` puts in a source first. POST:
    the same, asked with a JSON body (lines of many series name more columns than a URL holds)."""

    renderer_classes = [BundleRenderer, JSONRenderer]

    @extend_schema(summary="A view of a dataset", parameters=[ViewQuerySerializer],
                   responses={(200, BUNDLE): OpenApiResponse(BINARY, description="A view_data message as a bundle.")})
    @raises(INVALID, InvalidView)
    def get(self, request: Request, pk) -> Response:
        require_bundle(request)
        dataset = access.resolve(request.user, pk)
        query = _valid(ViewQuerySerializer, request.query_params)
        if query["kind"] == "lines" and "y" in query:
            query["y"] = request.query_params.getlist("y")
        message, buffers = first_view(dataset, **query)
        return Response(message.encode(buffers))

    @extend_schema(summary="A view of a dataset, asked with a JSON body", request=ViewBodySerializer,
                   responses={(200, BUNDLE): OpenApiResponse(BINARY, description="A view_data message as a bundle.")})
    @raises(INVALID, InvalidView)
    def post(self, request: Request, pk) -> Response:
        require_bundle(request)
        dataset = access.resolve(request.user, pk)
        message, buffers = first_view(dataset, **_valid(ViewBodySerializer, request.data))
        return Response(message.encode(buffers))


@extend_schema(tags=["dataset uploads"])
class UploadList(APIView):
    """GET: the caller's uploads in progress. POST: start one."""

    @extend_schema(summary="The caller's uploads in progress", responses=UploadSerializer(many=True))
    def get(self, request: Request) -> Response:
        uploads = services.Dataset.objects.uploads_of(request.user).order_by("created")
        return Response(UploadSerializer([services.upload_status(u) for u in uploads], many=True).data)

    @extend_schema(summary="Start an upload", request={"application/json": UploadCreateSerializer},
                   responses={201: UploadSerializer})
    @raises(InvalidColumns, InvalidDtype, UnequalLengths, TooLarge, QuotaExceeded, NameTaken, Unavailable)
    def post(self, request: Request) -> Response:
        data = _valid(UploadCreateSerializer, request.data)
        if image := data.get("image"):
            if len(data["columns"]) != 1:
                raise InvalidColumns("columns: an image is one column, its rows of pixels", field="columns")
            column = data["columns"][0]
            upload = images.start_upload(request.user, data["name"], column["dtype"], column["length"], image["width"],
                                         image["extent"])
            return Response(UploadSerializer(services.upload_status(upload)).data, status=status.HTTP_201_CREATED)
        upload = services.start_upload(request.user, data["name"], data["columns"], x=data.get("x"),
                                       require_sorted_x=data["require_sorted_x"])
        return Response(UploadSerializer(services.upload_status(upload)).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["dataset uploads"])
class UploadDetail(APIView):
    """GET: what the upload has received (to resume it). DELETE: cancel it; nothing is left."""

    @extend_schema(summary="An upload in progress", responses=UploadSerializer)
    def get(self, request: Request, pk) -> Response:
        return Response(UploadSerializer(services.upload_status(access.resolve_upload(request.user, pk))).data)

    @extend_schema(summary="Cancel an upload", responses={204: None})
    def delete(self, request: Request, pk) -> Response:
        services.cancel_upload(access.resolve_upload(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["dataset uploads"])
class UploadChunk(APIView):
    """PUT raw bytes: one chunk of a column, at ``?offset=``, with its ``?sha256=``."""

    parser_classes = [ChunkParser]

    @extend_schema(summary="Send a chunk of a column", parameters=[ChunkQuerySerializer],
                   request={OCTET_STREAM: BINARY}, responses=ChunkSerializer)
    @raises(BadChunk, ChecksumMismatch, TooLarge, Unavailable)
    def put(self, request: Request, pk) -> Response:
        upload = access.resolve_upload(request.user, pk)
        query = _valid(ChunkQuerySerializer, request.query_params)
        data = request.data if isinstance(request.data, bytes) else b""
        services.receive_chunk(upload, query["column"], query["offset"], data, query["sha256"])
        return Response({"column": query["column"], "offset": query["offset"], "bytes": len(data)})


@extend_schema(tags=["dataset uploads"])
class UploadFinish(APIView):
    """POST: check the upload, build its summaries and make it a dataset."""

    @extend_schema(summary="Finish an upload", request=None, responses={201: DatasetSerializer})
    @raises(UploadIncomplete, XNotSorted, NameTaken, Unavailable)
    def post(self, request: Request, pk) -> Response:
        dataset = services.finish_upload(access.resolve_upload(request.user, pk))
        return Response(DatasetSerializer(dataset, context={"request": request}).data, status=status.HTTP_201_CREATED)
