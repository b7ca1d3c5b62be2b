"""The REST API of hosted apps: saving a session's state as an ordinary plot, from a program
that holds the session's key (the page that opened it has it)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from appserver import sessions
from appserver.exceptions import NoSuchSession
from bokehsite.openapi import body, raises
from documents import access
from documents.exceptions import StorageQuotaExceeded, TitleTaken
from documents.models import Kind
from documents.serializers import DocumentSerializer, TitleSerializer

SESSION_KEY = OpenApiParameter(
    "key", str, OpenApiParameter.QUERY, required=False,
    description="The session's key, which only the page that opened it holds (or `Authorization: Key <key>` "
                "when the caller logs in with a browser session rather than an API token).",
)


@extend_schema(tags=["apps"], parameters=[SESSION_KEY])
class SaveSession(APIView):
    """POST {title}: the app session's state now, as a new document of the caller's own. The
    session goes on; the saved plot does not follow it."""

    @extend_schema(summary="Save an app session as a plot", request=body(TitleSerializer, bundle=False),
                   responses={201: DocumentSerializer})
    @raises(NoSuchSession, TitleTaken, StorageQuotaExceeded)
    def post(self, request: Request, document_id) -> Response:
        document = access.resolve(access.caller(request), document_id, "write")
        if document.kind != Kind.SESSION:
            raise NoSuchSession("this document is not an app session")
        serializer = TitleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved = sessions.save_as_plot(document, request.user, serializer.validated_data["title"])
        return Response(DocumentSerializer(saved, context={"request": request}).data, status=status.HTTP_201_CREATED)
