class BokehsiteError(Exception):
    """Base class of every error the client raises."""


class ServerUnreachable(BokehsiteError):
    """No HTTP answer from the server at ``url``."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"cannot reach the bokehsite server at {url}: {reason}")
        self.url = url
        self.reason = reason


class ServerError(BokehsiteError):
    """The server answered with an error; ``code`` is its machine code, ``detail`` its sentence."""

    def __init__(self, url: str, status: int, code: str, detail: str, field: str | None = None):
        where = f" ({field})" if field else ""
        super().__init__(f"{url} answered HTTP {status} {code}{where}: {detail}")
        self.url = url
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


class TooManyConnections(ServerError):
    """The server refused a websocket past one of its connection limits: ``limit`` says which
    (``per_user``: this account's, ``per_address``: this address's, ``per_process``: the server
    process's) and ``maximum`` how many connections it allows. Reconnecting would be refused
    again until other connections close."""

    def __init__(self, url: str, detail: str, limit: str | None, maximum: int | None):
        super().__init__(url, 429, "too_many_connections", detail)
        self.limit = limit
        self.maximum = maximum


class ChangeTooLarge(BokehsiteError):
    """One change is larger than the largest message the server accepts; it was not sent."""

    def __init__(self, kind: str, size: int, limit: int):
        super().__init__(
            f"a {kind} change of {size} bytes is larger than the largest message the server accepts "
            f"({limit} bytes, its BOKEHSITE_MAX_BODY_BYTES); it was not sent: send the data in smaller parts")
        self.kind = kind
        self.size = size
        self.limit = limit


class BrowserLoginFailed(BokehsiteError):
    """``Session.login_browser()`` got no token: the user denied it, or no answer came in time."""
