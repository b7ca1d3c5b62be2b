from django.urls import path

from bokehsite import protocol
from streaming.consumers import DocumentConsumer

websocket_urlpatterns = [
    path(protocol.PATH.format(document_id="<uuid:pk>"), DocumentConsumer.as_asgi()),
]
