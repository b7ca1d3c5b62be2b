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
