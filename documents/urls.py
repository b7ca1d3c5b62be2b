from django.urls import path

from documents import views

app_name = "documents"

urlpatterns = [
    path("", views.document_list, name="list"),
    path("documents/<uuid:pk>/", views.document_page, name="page"),
    path("documents/<uuid:pk>/frame/", views.document_frame, name="frame"),
    path("documents/<uuid:pk>/frame-token/", views.document_frame_token, name="frame-token"),
    path("documents/<uuid:pk>/share/", views.share_page, name="share"),
    path("documents/<uuid:pk>/autoload.js", views.document_autoload, name="autoload"),
    path("documents/<uuid:pk>/embeds/", views.embeds_page, name="embeds"),
    path("documents/<uuid:pk>/history/", views.history_page, name="history"),
    path("documents/<uuid:pk>/thumbnail.png", views.document_thumbnail, name="thumbnail"),
]
