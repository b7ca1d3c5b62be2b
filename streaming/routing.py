from django.urls import path

from streaming.consumers import DocumentConsumer

websocket_urlpatterns = [
    path("ws/documents/<uuid:pk>/", DocumentConsumer.as_asgi()),
]
