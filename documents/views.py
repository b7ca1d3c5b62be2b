"""HTML pages: the caller's document list and the plot page."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.users import acting_user
from documents import services
from documents.exceptions import DocumentNotFound


def document_list(request: HttpRequest) -> HttpResponse:
    documents = services.owned_documents(acting_user(request))
    return render(request, "documents/list.html", {"documents": documents})


def document_page(request: HttpRequest, pk) -> HttpResponse:
    try:
        document = services.get_readable(acting_user(request), pk)
    except DocumentNotFound:
        raise Http404("no such document") from None
    context = {
        "document": document,
        "doc_url": reverse("api:document-doc", args=[document.id]),
        "ws_path": f"/ws/documents/{document.id}/",
    }
    return render(request, "documents/plot.html", context)
