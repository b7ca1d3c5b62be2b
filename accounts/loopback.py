"""API tokens handed to a script on the user's own machine, through their browser
(``Session.login_browser()``): the loopback flow of native apps (RFC 8252).

The script listens on ``127.0.0.1:<port>`` and opens ``/accounts/token/authorize/?port=&state=``
in the browser; there the logged-in user (by password or single sign-on) confirms, and the
browser is sent to ``http://127.0.0.1:<port>/?token=...&state=...``. Only that loopback address
is ever a target, so the token reaches no other host; the state, which the script chose and
checks, ties the answer to its own request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken
from bokehsite.errors import ApiError

# Ports below this are the system's: a script of the user's cannot listen there.
MIN_PORT = 1024
MAX_PORT = 65535
STATE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class BadTokenRequest(ApiError):
    code = "bad_token_request"


@dataclass(frozen=True)
class TokenRequest:
    """A script's request for a token: where it listens and the state it will check."""

    port: int
    state: str

    @classmethod
    def parse(cls, query) -> TokenRequest:
        """From a query string's ``port`` and ``state``.

        Raises:
            BadTokenRequest: either is missing or not what a script sends (naming the field).
        """
        port = query.get("port", "")
        if not port.isdigit() or not MIN_PORT <= int(port) <= MAX_PORT:
            raise BadTokenRequest(f"port must be a number from {MIN_PORT} to {MAX_PORT}", field="port")
        state = query.get("state", "")
        if not STATE.fullmatch(state):
            raise BadTokenRequest("state must be 16 to 128 letters, digits, - or _", field="state")
        return cls(int(port), state)

    @property
    def target(self) -> str:
        """Where the answer goes (without its query)."""
        return f"http://127.0.0.1:{self.port}/"

    def answer(self, query: dict[str, str]) -> str:
        return f"{self.target}?{urlencode({**query, 'state': self.state})}"


def token_name(now=None) -> str:
    return f"created by login_browser on {(now or timezone.now()):%Y-%m-%d}"


def grant(user: AbstractBaseUser, request: TokenRequest) -> tuple[ApiToken, str]:
    """A new API token for ``user``, and the loopback URL that hands its secret to the script."""
    token, secret = tokens.create_token(user, token_name())
    return token, request.answer({"token": secret, "username": user.get_username()})


def refusal(request: TokenRequest) -> str:
    """The loopback URL that tells the script the user said no."""
    return request.answer({"error": "access_denied"})
