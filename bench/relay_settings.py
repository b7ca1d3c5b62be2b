"""Django settings for the bare Channels relay (``bench/relay_asgi.py``) of bench/streaming.py.

The channel layer is the in-memory one, or Redis when ``REDIS_URL`` is set, as for bokehsite.
"""

import os

SECRET_KEY = "relay-benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "channels"]
ASGI_APPLICATION = "bench.relay_asgi.application"
USE_TZ = True

if REDIS_URL := os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
