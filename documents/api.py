"""The REST API. Views parse and answer; ``documents.services`` decides."""

from rest_framework import generics, status
from rest_framework.exceptions import NotAcceptable, NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents import services
from documents.renderers import BundleRenderer
from bokehsite.client import wire
from documents.serializers import (
    ContentSerializer, CreateSerializer, DocumentSerializer, PatchSerializer, SinceQuerySerializer,
    TitleSerializer, VersionQuerySerializer,
)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _require_bundle(request: Request) -> None:
    if not isinstance(request.accepted_renderer, BundleRenderer):
        raise NotAcceptable(f"this is served only as {BundleRenderer.media_type}")


class DocumentList(generics.ListAPIView):
    """GET: the caller's documents (``?title=`` filters). POST: create one from a bundle or JSON."""

    serializer_class = DocumentSerializer

    def get_queryset(self):
        documents = services.owned_documents(self.request.user).select_related("owner")
        if title := self.request.query_params.get("title"):
            documents = documents.filter(title=title)
        return documents

    def post(self, request: Request) -> Response:
        data = _valid(CreateSerializer, request.data)
        document = services.create_document(
            request.user, data["title"], data["doc"], getattr(request.data, "buffers", [])
        )
        body = DocumentSerializer(document, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class DocumentDetail(APIView):
    """GET: metadata. PATCH: rename. DELETE: delete."""

    def get(self, request: Request, pk) -> Response:
        document = services.get_readable(request.user, pk)
        return Response(DocumentSerializer(document, context={"request": request}).data)

    def patch(self, request: Request, pk) -> Response:
        document = services.get_writable(request.user, pk)
        services.rename_document(document, _valid(TitleSerializer, request.data)["title"])
        return Response(DocumentSerializer(document, context={"request": request}).data)

    def delete(self, request: Request, pk) -> Response:
        services.delete_document(services.get_writable(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentContent(APIView):
    """GET: the document as a bundle, now or at ``?version=``. PUT: replace it (bundle or JSON)."""

    renderer_classes = [BundleRenderer, JSONRenderer]

    def get(self, request: Request, pk) -> Response:
        _require_bundle(request)
        document = services.get_readable(request.user, pk)
        asked = _valid(VersionQuerySerializer, request.query_params).get("version")
        if asked is not None and asked > document.version:
            raise NotFound(f"version {asked} does not exist yet; the document is at version {document.version}")
        etag = f'"{document.id}-{asked or document.version}"'
        if asked is None and etag in request.headers.get("If-None-Match", ""):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        version, bundle = services.document_bundle(document, asked)
        etag = f'"{document.id}-{version}"'
        headers = {"ETag": etag, "X-Document-Version": str(version), "Cache-Control": "no-cache"}
        return Response(bundle, headers=headers)

    def put(self, request: Request, pk) -> Response:
        document = services.get_writable(request.user, pk)
        data = _valid(ContentSerializer, request.data)
        services.replace_document(document, data["doc"], getattr(request.data, "buffers", []), author=request.user)
        return Response(DocumentSerializer(document, context={"request": request}).data)


class DocumentEvents(APIView):
    """GET ``?since=V``: the changes after version V, as a bundle. POST: apply a change."""

    renderer_classes = [BundleRenderer, JSONRenderer]

    def get(self, request: Request, pk) -> Response:
        _require_bundle(request)
        document = services.get_readable(request.user, pk)
        query = _valid(SinceQuerySerializer, request.query_params)
        events = services.events_after(document, query["since"], query["limit"])
        items, buffers = [], []
        for event in events:
            items.append({"version": event.version, "kind": event.kind, "patch": event.patch})
            buffers.extend(event.buffer_list())
        version = events[-1].version if events else query["since"]
        body = wire.pack({"since": query["since"], "version": version, "current": document.version, "items": items}, buffers)
        return Response(body, headers={"X-Document-Version": str(document.version)})

    def post(self, request: Request, pk) -> Response:
        document = services.get_writable(request.user, pk)
        data = _valid(PatchSerializer, request.data)
        change = services.apply_patch(
            document, data["patch"], getattr(request.data, "buffers", []),
            author=request.user, base_version=data.get("base_version"),
        )
        return Response({"version": change.version}, status=status.HTTP_201_CREATED)
