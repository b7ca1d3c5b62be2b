from django.urls import path

from appserver import api

app_name = "appserver-api"

urlpatterns = [
    path("app-sessions/<uuid:document_id>/save/", api.SaveSession.as_view(), name="session-save"),
]
