from django.urls import path

from documents import api

app_name = "api"

urlpatterns = [
    path("documents/", api.DocumentList.as_view(), name="document-list"),
    path("documents/<uuid:pk>/", api.DocumentDetail.as_view(), name="document-detail"),
    path("documents/<uuid:pk>/doc/", api.DocumentContent.as_view(), name="document-doc"),
    path("documents/<uuid:pk>/events/", api.DocumentEvents.as_view(), name="document-events"),
    path("documents/<uuid:pk>/publish/", api.Publish.as_view(), name="document-publish"),
    path("documents/<uuid:pk>/unpublish/", api.Unpublish.as_view(), name="document-unpublish"),
    path("documents/<uuid:pk>/visibility/", api.SetVisibility.as_view(), name="document-visibility"),
    path("documents/<uuid:pk>/secret-link/", api.SecretLink.as_view(), name="document-secret-link"),
    path("documents/<uuid:pk>/collaborators/", api.Collaborators.as_view(), name="document-collaborators"),
    path("documents/<uuid:pk>/collaborators/<str:username>/", api.CollaboratorDetail.as_view(),
         name="document-collaborator"),
    path("documents/<uuid:pk>/groups/", api.GroupShares.as_view(), name="document-group-shares"),
    path("documents/<uuid:pk>/groups/<str:name>/", api.GroupShareDetail.as_view(), name="document-group-share"),
    path("documents/<uuid:pk>/embed-tokens/", api.EmbedTokens.as_view(), name="document-embed-tokens"),
    path("documents/<uuid:pk>/embed-tokens/<uuid:token_id>/", api.EmbedTokenDetail.as_view(),
         name="document-embed-token"),
    # History
    path("documents/<uuid:pk>/history/", api.History.as_view(), name="document-history"),
    path("documents/<uuid:pk>/restore/", api.Restore.as_view(), name="document-restore"),
    # Exports
    path("documents/<uuid:pk>/export/", api.Export.as_view(), name="document-export"),
    path("account/export/", api.AccountExport.as_view(), name="account-export"),
    path("account/import/", api.AccountImport.as_view(), name="account-import"),
]
