from django.urls import path

from documents import api

app_name = "api"

urlpatterns = [
    path("documents/", api.DocumentList.as_view(), name="document-list"),
    path("documents/<uuid:pk>/", api.DocumentDetail.as_view(), name="document-detail"),
    path("documents/<uuid:pk>/doc/", api.DocumentContent.as_view(), name="document-doc"),
    path("documents/<uuid:pk>/events/", api.DocumentEvents.as_view(), name="document-events"),
]
