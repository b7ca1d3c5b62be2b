"""The REST API. Views parse and answer; ``documents.services`` decides."""

import itertools
import tempfile
from collections.abc import Iterator
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.credentials import Credentials
from accounts.secrets import expires_in
from bokehsite import protocol
from bokehsite.errors import Unavailable
from bokehsite.negotiation import ContentNegotiation
from bokehsite.openapi import BINARY, BUNDLE, INVALID, SECRET_LINK_KEY, body, raises
from documents import access, embeds, exports, services
from documents.exceptions import (
    Forbidden, HistoryTruncated, InvalidDocument, InvalidEmbedToken, InvalidFrameToken, InvalidPatch, TitleTaken, UnknownModelType,
    UserNotFound, VersionConflict,
)
from documents.exceptions import GroupShareNotFound, UnknownGroup
from documents.exceptions import ExportFailed, ExportUnavailable, InvalidArchive, StorageQuotaExceeded
from documents.renderers import BundleRenderer, ExportRenderer, require_bundle
from documents.serializers import (
    CollaboratorSerializer, ContentSerializer, CreateSerializer, DocumentSerializer, PatchSerializer, ShareSerializer,
    SinceQuerySerializer, TitleSerializer, VersionQuerySerializer, VersionSerializer,
)
from documents.serializers import GroupShareSerializer
from documents.serializers import CreateEmbedTokenSerializer, EmbedTokenSerializer, NewEmbedTokenSerializer
from documents.serializers import DocumentListQuerySerializer
from documents.serializers import HistoryQuerySerializer, HistorySerializer, RestoreSerializer
from documents.serializers import AccountExportQuerySerializer, ExportQuerySerializer
from documents.serializers import AccountImportQuerySerializer, ImportedSerializer
from documents.parsers import ZipParser

BUNDLE_ANSWER = {(200, BUNDLE): OpenApiResponse(BINARY, description="A bundle (see the README's wire format).")}


def _resolve(request: Request, pk, need: access.RoleName = "read"):
    """The document ``pk`` if the caller has ``need`` on it (``documents.access``); a secret link's
    ``?key=`` counts, so that a change its holder may not make answers 403 rather than 404."""
    return access.resolve(access.caller(request), pk, need)


def _valid(serializer_class, data, **context) -> dict:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _page_url(request: Request, offset: int, limit: int) -> str:
    """The list's URL with the same query, at another page."""
    query = request.query_params.copy()
    query["offset"], query["limit"] = str(offset), str(limit)
    return request.build_absolute_uri(request.path) + "?" + query.urlencode()


LIST_HEADERS = [
    OpenApiParameter("X-Total-Count", int, OpenApiParameter.HEADER, response=[200],
                     description="How many documents match, on every page."),
    OpenApiParameter("Link", str, OpenApiParameter.HEADER, response=[200],
                     description='The next and previous pages, when there are: `<URL>; rel="next", <URL>; rel="prev"`.'),
]


@extend_schema(tags=["documents"])
class DocumentList(generics.ListAPIView):
    """GET: the caller's documents, searched (``?q=``), sorted (``?sort=``) and a page at a time
    (``?limit=``, ``?offset=``; ``?title=`` is one title exactly). POST: create one from a bundle or JSON."""

    serializer_class = DocumentSerializer

    @extend_schema(summary="The caller's documents", parameters=[DocumentListQuerySerializer, *LIST_HEADERS],
                   responses=DocumentSerializer(many=True))
    @raises(INVALID)
    def get(self, request: Request, *args, **kwargs) -> Response:
        query = _valid(DocumentListQuerySerializer, request.query_params)
        documents = self.get_queryset()
        if query.get("title"):
            documents = documents.filter(title=query["title"])
        documents = services.find_documents(documents, search=query["q"], order=query["sort"])
        total = documents.count()
        start, limit = query["offset"], query["limit"]
        page = documents[start:start + limit]
        headers = {"X-Total-Count": str(total)}
        links = []
        if start + limit < total:
            links.append(f'<{_page_url(request, start + limit, limit)}>; rel="next"')
        if start > 0:
            links.append(f'<{_page_url(request, max(start - limit, 0), limit)}>; rel="prev"')
        if links:
            headers["Link"] = ", ".join(links)
        return Response(self.get_serializer(page, many=True).data, headers=headers)

    def get_queryset(self):
        return services.owned_documents(self.request.user).select_related("owner")

    @extend_schema(summary="Create a document", request=body(CreateSerializer), responses={201: DocumentSerializer})
    @raises(InvalidDocument, UnknownModelType, TitleTaken, StorageQuotaExceeded)
    def post(self, request: Request) -> Response:
        data = _valid(CreateSerializer, request.data)
        document = services.create_document(
            request.user, data["title"], data["doc"], getattr(request.data, "buffers", [])
        )
        body = DocumentSerializer(document, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


@extend_schema(tags=["documents"], parameters=[SECRET_LINK_KEY])
class DocumentDetail(APIView):
    """GET: metadata. PATCH: rename. DELETE: delete."""

    @extend_schema(summary="A document's metadata", responses=DocumentSerializer)
    def get(self, request: Request, pk) -> Response:
        document = _resolve(request, pk)
        return Response(DocumentSerializer(document, context={"request": request}).data)

    @extend_schema(summary="Rename a document", request=body(TitleSerializer, bundle=False), responses=DocumentSerializer)
    @raises(Forbidden, TitleTaken)
    def patch(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        services.rename_document(document, _valid(TitleSerializer, request.data)["title"])
        return Response(DocumentSerializer(document, context={"request": request}).data)

    @extend_schema(summary="Delete a document", responses={204: None})
    @raises(Forbidden)
    def delete(self, request: Request, pk) -> Response:
        services.delete_document(_resolve(request, pk, "owner"))
        return Response(status=status.HTTP_204_NO_CONTENT)


FRAME_TOKEN = OpenApiParameter("frame_token", str, description="The sandboxed plot frame's signed token, instead of a login.")


class FrameReadable:
    """A view that a sandboxed plot frame may GET with ``?frame_token=``: no cookies, no API
    token, from the opaque origin ``null``. Those answers carry CORS headers; nothing else does."""

    def _frame_token(self) -> str | None:
        request = self.request  # Django's request until DRF wraps it; both have GET and method
        if request is not None and request.method in SAFE_METHODS:
            return Credentials.from_request(request).frame_token
        return None

    def get_authenticators(self):
        return [] if self._frame_token() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._frame_token() else super().get_permissions()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self._frame_token():
            response["Access-Control-Allow-Origin"] = "*"
            response["Access-Control-Expose-Headers"] = "ETag, X-Document-Version"
        return response


@extend_schema(tags=["documents"], parameters=[SECRET_LINK_KEY])
class DocumentContent(FrameReadable, APIView):
    """GET: the document as a bundle, now or at ``?version=``. PUT: replace it (bundle or JSON).

    A sandboxed plot frame GETs with ``?frame_token=`` (``FrameReadable``).
    """

    renderer_classes = [BundleRenderer, JSONRenderer]

    @extend_schema(
        summary="A document's content", parameters=[VersionQuerySerializer, FRAME_TOKEN],
        responses={**BUNDLE_ANSWER, 304: OpenApiResponse(description="Unchanged since the `If-None-Match` ETag.")},
    )
    @raises(INVALID, InvalidFrameToken, InvalidEmbedToken, HistoryTruncated)
    def get(self, request: Request, pk) -> Response:
        require_bundle(request)
        document = access.resolve(access.caller(request, frame_token=True), pk)
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

    @extend_schema(summary="Replace a document's content", request=body(ContentSerializer),
                   responses={(200, "application/json"): DocumentSerializer})
    @raises(Forbidden, InvalidDocument, UnknownModelType, StorageQuotaExceeded)
    def put(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "write")
        data = _valid(ContentSerializer, request.data)
        services.replace_document(document, data["doc"], getattr(request.data, "buffers", []), author=request.user)
        return Response(DocumentSerializer(document, context={"request": request}).data)


@extend_schema(tags=["events"], parameters=[SECRET_LINK_KEY])
class DocumentEvents(FrameReadable, APIView):
    """GET ``?since=V``: the changes after version V, as a bundle (a history frame replays them
    with its ``?frame_token=``). POST: apply a change."""

    renderer_classes = [BundleRenderer, JSONRenderer]

    @extend_schema(summary="The changes after a version", parameters=[SinceQuerySerializer, FRAME_TOKEN],
                   responses=BUNDLE_ANSWER)
    @raises(INVALID, InvalidFrameToken, HistoryTruncated)
    def get(self, request: Request, pk) -> Response:
        require_bundle(request)
        document = access.resolve(access.caller(request, frame_token=True), pk)
        query = _valid(SinceQuerySerializer, request.query_params, current=document.version)
        events = services.events_after(document, query["since"], query["limit"])
        version = events[-1].version if events else query["since"]
        body = protocol.changes_frame(
            {"since": query["since"], "version": version, "current": document.version},
            (({"version": e.version, "kind": e.kind, "patch": e.patch, "created": e.created.isoformat()}, e.buffer_list())
             for e in events))
        return Response(body, headers={"X-Document-Version": str(document.version)})

    @extend_schema(summary="Apply a change", request=body(PatchSerializer),
                   responses={(201, "application/json"): VersionSerializer})
    @raises(Forbidden, InvalidPatch, VersionConflict, StorageQuotaExceeded)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "write")
        data = _valid(PatchSerializer, request.data)
        change = services.apply_patch(
            document, data["patch"], getattr(request.data, "buffers", []),
            author=request.user, base_version=data.get("base_version"),
        )
        return Response({"version": change.version}, status=status.HTTP_201_CREATED)


# --- sharing ---------------------------------------------------------------------------------


def _metadata(request: Request, document) -> Response:
    return Response(DocumentSerializer(document, context={"request": request}).data)


@extend_schema(tags=["sharing"], parameters=[SECRET_LINK_KEY])
class Publish(APIView):
    """POST: make the document public. The answer's ``public_url`` is the link to hand out."""

    @extend_schema(summary="Make a document public", request=None, responses=DocumentSerializer)
    @raises(Forbidden)
    def post(self, request: Request, pk) -> Response:
        return _metadata(request, services.publish(_resolve(request, pk, "owner")))


@extend_schema(tags=["sharing"], parameters=[SECRET_LINK_KEY])
class Unpublish(APIView):
    """POST: make the document private."""

    @extend_schema(summary="Make a document private", request=None, responses=DocumentSerializer)
    @raises(Forbidden)
    def post(self, request: Request, pk) -> Response:
        return _metadata(request, services.unpublish(_resolve(request, pk, "owner")))


@extend_schema(tags=["sharing"], parameters=[SECRET_LINK_KEY])
class SetVisibility(APIView):
    """POST {visibility}: "private", "public" or "secret" (keeps an existing secret link)."""

    @extend_schema(summary="Set a document's visibility", request=body(ShareSerializer, bundle=False),
                   responses=DocumentSerializer)
    @raises(Forbidden)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        return _metadata(request, services.set_visibility(document, _valid(ShareSerializer, request.data)["visibility"]))


@extend_schema(tags=["sharing"], parameters=[SECRET_LINK_KEY])
class SecretLink(APIView):
    """POST: a new secret link (the old one stops working); the answer's ``secret_url`` is it."""

    @extend_schema(summary="Make a new secret link", request=None, responses=DocumentSerializer)
    @raises(Forbidden)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        return _metadata(request, services.regenerate_secret_link(document))


@extend_schema(tags=["collaborators"], parameters=[SECRET_LINK_KEY])
class Collaborators(APIView):
    """GET: who the document is shared with. POST {username, role}: share it, or change a role."""

    @extend_schema(summary="Who a document is shared with", responses=CollaboratorSerializer(many=True))
    @raises(Forbidden)
    def get(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        return Response(CollaboratorSerializer(services.collaborators(document), many=True).data)

    @extend_schema(summary="Share a document, or change a collaborator's role",
                   request=body(CollaboratorSerializer, bundle=False), responses={201: CollaboratorSerializer})
    @raises(Forbidden, UserNotFound)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        data = _valid(CollaboratorSerializer, request.data)
        collaborator = services.share(document, data["user"]["username"], data["role"])
        return Response(CollaboratorSerializer(collaborator).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["collaborators"], parameters=[SECRET_LINK_KEY])
class CollaboratorDetail(APIView):
    """DELETE: stop sharing the document with this user."""

    @extend_schema(summary="Stop sharing a document with someone", responses={204: None})
    @raises(Forbidden, UserNotFound)
    def delete(self, request: Request, pk, username: str) -> Response:
        services.unshare(_resolve(request, pk, "owner"), username)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["collaborators"], parameters=[SECRET_LINK_KEY])
class GroupShares(APIView):
    """GET: the groups the document is shared with. POST {group, role}: share it with every member
    of a group, or change the group's role."""

    @extend_schema(summary="The groups a document is shared with", responses=GroupShareSerializer(many=True))
    @raises(Forbidden)
    def get(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        return Response(GroupShareSerializer(services.group_shares(document), many=True).data)

    @extend_schema(summary="Share a document with a group, or change the group's role",
                   request=body(GroupShareSerializer, bundle=False), responses={201: GroupShareSerializer})
    @raises(Forbidden, UnknownGroup)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        data = _valid(GroupShareSerializer, request.data)
        share = services.share_with_group(document, data["group"]["name"], data["role"])
        return Response(GroupShareSerializer(share).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["collaborators"], parameters=[SECRET_LINK_KEY])
class GroupShareDetail(APIView):
    """DELETE: stop sharing the document with this group."""

    @extend_schema(summary="Stop sharing a document with a group", responses={204: None})
    @raises(Forbidden, GroupShareNotFound)
    def delete(self, request: Request, pk, name: str) -> Response:
        services.unshare_group(_resolve(request, pk, "owner"), name)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- embeds ----------------------------------------------------------------------------------


@extend_schema(tags=["sharing"], parameters=[SECRET_LINK_KEY])
class EmbedTokens(APIView):
    """GET: the document's embed tokens. POST {origins, expires?}: a new one, for other sites' pages."""

    @extend_schema(summary="A document's embed tokens", responses=EmbedTokenSerializer(many=True))
    @raises(Forbidden)
    def get(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        return Response(EmbedTokenSerializer(embeds.tokens_of(document), many=True).data)

    @extend_schema(summary="Make an embed token", request=body(CreateEmbedTokenSerializer, bundle=False),
                   responses={201: NewEmbedTokenSerializer})
    @raises(Forbidden)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "owner")
        data = _valid(CreateEmbedTokenSerializer, request.data)
        expires = expires_in(data["expires_in_days"]) or data["expires"]
        token, secret = embeds.create(document, data["origins"], expires=expires, name=data["name"])
        token.token = secret
        token.autoload_url = request.build_absolute_uri(
            reverse("documents:autoload", args=[document.id])) + "?" + urlencode({"embed_token": secret})
        return Response(NewEmbedTokenSerializer(token).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["sharing"], parameters=[SECRET_LINK_KEY])
class EmbedTokenDetail(APIView):
    """DELETE: revoke the embed token; pages that show it stop and say why."""

    @extend_schema(summary="Revoke an embed token", responses={204: None})
    @raises(Forbidden)
    def delete(self, request: Request, pk, token_id) -> Response:
        token = embeds.get(_resolve(request, pk, "owner"), token_id)
        if token is None:
            raise NotFound("no such embed token")
        embeds.revoke(token)
        return Response(status=status.HTTP_204_NO_CONTENT)

# --- history ---------------------------------------------------------------------------------


@extend_schema(tags=["history"], parameters=[SECRET_LINK_KEY])
class History(APIView):
    """GET: the document's versions, newest first, a page at a time (``?before=``, ``?limit=``)."""

    @extend_schema(summary="A document's versions", parameters=[HistoryQuerySerializer], responses=HistorySerializer)
    @raises(INVALID)
    def get(self, request: Request, pk) -> Response:
        document = _resolve(request, pk)
        query = _valid(HistoryQuerySerializer, request.query_params)
        page = services.version_history(document, before=query.get("before"), limit=query["limit"])
        return Response(HistorySerializer(page).data)


@extend_schema(tags=["history"], parameters=[SECRET_LINK_KEY])
class Restore(APIView):
    """POST {version}: a new version equal to an earlier one, recorded as its restore."""

    @extend_schema(summary="Restore an earlier version", request=body(RestoreSerializer, bundle=False),
                   responses={201: DocumentSerializer})
    @raises(Forbidden, HistoryTruncated, StorageQuotaExceeded)
    def post(self, request: Request, pk) -> Response:
        document = _resolve(request, pk, "write")
        version = _valid(RestoreSerializer, request.data, current=document.version)["version"]
        services.restore_version(document, version, author=request.user)
        return Response(DocumentSerializer(document, context={"request": request}).data, status=status.HTTP_201_CREATED)


# --- exports -----------------------------------------------------------------------------------


class _AnswerAsExported(ContentNegotiation):
    """Whatever the Accept header, an export answers in its format; ``?format=`` names that
    format here, not DRF's renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = next(r for r in renderers if isinstance(r, ExportRenderer))
        return renderer, renderer.media_type


def _streamed(request: Request, chunks: Iterator[bytes]):
    """``chunks`` as an answer's body, sent as they come. Under ASGI an async iterator: Django
    would gather a synchronous one in memory first."""
    if not isinstance(request._request, ASGIRequest):
        return chunks

    async def pieces():
        while batch := await sync_to_async(lambda: list(itertools.islice(chunks, 8)), thread_sensitive=False)():
            for piece in batch:
                yield piece

    return pieces()


@extend_schema(tags=["exports"], parameters=[SECRET_LINK_KEY])
class Export(APIView):
    """GET ``?format=html|json|png|svg&version=V``: the document written out, as a download."""

    renderer_classes = [ExportRenderer]
    content_negotiation_class = _AnswerAsExported

    @extend_schema(summary="Export a document", parameters=[ExportQuerySerializer], responses={
        (200, "text/html"): OpenApiResponse(BINARY, description="A standalone page: BokehJS inline, no server needed."),
        (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Bokeh's document JSON."),
        (200, "image/png"): OpenApiResponse(BINARY, description="The document drawn by headless Chromium."),
        (200, "image/svg+xml"): OpenApiResponse(BINARY, description="The document's roots drawn as SVG."),
    })
    @raises(INVALID, HistoryTruncated, ExportUnavailable, ExportFailed, Unavailable)
    def get(self, request: Request, pk) -> StreamingHttpResponse:
        document = _resolve(request, pk)
        query = _valid(ExportQuerySerializer, request.query_params)
        asked = query.get("version")
        if asked is not None and asked > document.version:
            raise NotFound(f"version {asked} does not exist yet; the document is at version {document.version}")
        fmt = exports.FORMATS[query["format"]]
        version, chunks = services.export_document(document, fmt.name, asked)
        response = StreamingHttpResponse(_streamed(request, chunks), content_type=fmt.media_type)
        response["Content-Disposition"] = f'attachment; filename="{exports.filename(document.title, version, fmt)}"'
        response["X-Document-Version"] = str(version)
        response["Cache-Control"] = "no-cache"
        return response


@extend_schema(tags=["exports"])
class AccountExport(APIView):
    """GET ``?history=true|false``: every document the caller owns, as one zip."""

    renderer_classes = [ExportRenderer]
    content_negotiation_class = _AnswerAsExported

    @extend_schema(summary="Export all of one's documents as a zip", parameters=[AccountExportQuerySerializer],
                   responses={(200, "application/zip"): OpenApiResponse(
                       BINARY, description="manifest.json and each document's JSON (and, if asked, its history).")})
    @raises(INVALID)
    def get(self, request: Request) -> FileResponse:
        with_history = _valid(AccountExportQuerySerializer, request.query_params)["history"]
        out = tempfile.TemporaryFile()  # on disk, not in memory; sent from there
        services.export_account(request.user, out, with_history=with_history)
        out.seek(0)
        name = f"bokehsite-{request.user.get_username()}-{timezone.now():%Y%m%d-%H%M%S}.zip"
        return FileResponse(out, as_attachment=True, filename=name, content_type="application/zip")


@extend_schema(tags=["exports"])
class AccountImport(APIView):
    """POST a zip from an account export (``Content-Type: application/zip``): its documents become
    the caller's, all or none, with the history the zip carries (``?history=true`` exports)."""

    parser_classes = [ZipParser]

    @extend_schema(summary="Import an account zip", parameters=[AccountImportQuerySerializer],
                   request={"application/zip": BINARY}, responses={201: ImportedSerializer(many=True)})
    @raises(InvalidArchive, InvalidDocument, UnknownModelType, TitleTaken, StorageQuotaExceeded)
    def post(self, request: Request) -> Response:
        on_conflict = _valid(AccountImportQuerySerializer, request.query_params).get("on_conflict")
        data = request.data.get("archive") if hasattr(request.data, "get") else None
        if not data:
            raise InvalidArchive("send the zip as the body, with Content-Type: application/zip")
        results = services.import_account(request.user, data, on_conflict=on_conflict)
        return Response(ImportedSerializer(results, many=True).data, status=status.HTTP_201_CREATED)
