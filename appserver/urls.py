from django.urls import path, re_path

from appserver import views

app_name = "appserver"

urlpatterns = [
    path("", views.app_list, name="list"),
    path("<str:name>/", views.app_page, name="page"),
    path("<str:name>/autoload.js", views.app_autoload, name="autoload"),
    path("<str:name>/save/", views.save_session, name="save"),
    re_path(r"^(?P<name>[^/]+)/static/(?P<path>.+)$", views.app_static, name="static"),
]
