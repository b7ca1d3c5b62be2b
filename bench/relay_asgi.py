"""A bare Channels relay: the least a Channels server can do to fan frames out to viewers.

Every connection to ``/ws/relay/<group>/`` joins that group. A binary frame a connection sends
goes to the group with one ``group_send`` and each other member sends it on to its client as
it is: no parsing, no storage, no flow control. The sender gets a text frame ``ack`` once the
``group_send`` has returned, so a producer can keep a bounded number of frames in flight.

Run from the repository root:
    DJANGO_SETTINGS_MODULE=bench.relay_settings python -m daphne -p PORT bench.relay_asgi:application
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.relay_settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class RelayConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.group = f"relay.{self.scope['url_route']['kwargs']['group']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if bytes_data is None:
            return
        await self.channel_layer.group_send(
            self.group, {"type": "relay.frame", "bytes": bytes_data, "sender": self.channel_name}
        )
        await self.send(text_data="ack")

    async def relay_frame(self, event) -> None:
        if event["sender"] != self.channel_name:
            await self.send(bytes_data=event["bytes"])


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/relay/<slug:group>/", RelayConsumer.as_asgi())])}
)
