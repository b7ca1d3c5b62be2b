from django.urls import path

from appserver.consumers import AppHostConsumer

websocket_urlpatterns = [
    path("ws/apphost/", AppHostConsumer.as_asgi()),
]
