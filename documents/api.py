"""The REST API. Views parse and answer; ``documents.services`` decides."""

from rest_framework import generics, status
from rest_framework.exceptions import NotAcceptable
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents import services
from documents.renderers import BundleRenderer
from documents.serializers import ContentSerializer, CreateSerializer, DocumentSerializer, TitleSerializer


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class DocumentList(generics.ListAPIView):
    """GET: the caller's documents (``?title=`` filters). POST: create one from a bundle or JSON."""

    serializer_class = DocumentSerializer

    def get_queryset(self):
        documents = services.owned_documents(self.request.user).select_related("owner")
        if title := self.request.query_params.get("title"):
            documents = documents.filter(title=title)
        return documents

    def post(self, request: Request) -> Response:
        data = _valid(CreateSerializer, request)
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
        services.rename_document(document, _valid(TitleSerializer, request)["title"])
        return Response(DocumentSerializer(document, context={"request": request}).data)

    def delete(self, request: Request, pk) -> Response:
        services.delete_document(services.get_writable(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentContent(APIView):
    """GET: the document as a bundle. PUT: replace the whole document (bundle or JSON)."""

    renderer_classes = [BundleRenderer, JSONRenderer]

    def get(self, request: Request, pk) -> Response:
        if not isinstance(request.accepted_renderer, BundleRenderer):
            raise NotAcceptable(f"a document's content is served only as {BundleRenderer.media_type}")
        document = services.get_readable(request.user, pk, content=True)
        headers = {"ETag": document.etag, "X-Document-Version": str(document.version), "Cache-Control": "no-cache"}
        if document.etag in request.headers.get("If-None-Match", ""):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(document.to_bundle(), headers=headers)

    def put(self, request: Request, pk) -> Response:
        document = services.get_writable(request.user, pk, content=True)
        data = _valid(ContentSerializer, request)
        services.replace_document(document, data["doc"], getattr(request.data, "buffers", []))
        return Response(DocumentSerializer(document, context={"request": request}).data)
