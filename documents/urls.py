from django.urls import path

from documents import views

app_name = "documents"

urlpatterns = [
    path("", views.document_list, name="list"),
    path("documents/<uuid:pk>/", views.document_page, name="page"),
]
