"""A real OpenID provider for the single sign-on tests: node-oidc-provider (tests/oidc/provider.js)
under Node, installed with ``npm ci`` from tests/oidc/package-lock.json into a cache directory
(``$BOKEHSITE_TEST_CACHE``, default ``~/.cache/bokehsite-tests``) the first time it is needed."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "oidc"
FILES = ("package.json", "package-lock.json", "provider.js")
CLIENT_ID = "bokehsite-tests"
CLIENT_SECRET = "a client secret the tests share with their provider"
INSTALL_TIMEOUT = 300
# The provider's users, by login name: the claims it gives them besides ``sub``.
USERS = {
    "ada": {"preferred_username": "ada.lovelace", "email": "ada@example.org", "groups": ["analysts", "engines"]},
    "odd name": {"preferred_username": "Ada Lovelace!", "email": "odd@example.org", "groups": []},
}


def node_missing() -> str | None:
    """Why the provider cannot run here, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def installed_dir() -> Path:
    """A directory with the provider and its node_modules, installed once per version of its files."""
    digest = hashlib.sha256(b"".join((HERE / name).read_bytes() for name in FILES)).hexdigest()[:16]
    cache = Path(os.environ.get("BOKEHSITE_TEST_CACHE") or Path.home() / ".cache" / "bokehsite-tests")
    target = cache / f"oidc-provider-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "oidc-provider.lock", "w") as lock:  # pytest-xdist workers install it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "node_modules" / "oidc-provider").is_dir():
            work = Path(tempfile.mkdtemp(prefix="oidc-provider-", dir=cache))
            for name in FILES:
                shutil.copy(HERE / name, work / name)
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work,
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            if done.returncode:
                shutil.rmtree(work, ignore_errors=True)
                raise RuntimeError(f"npm ci of the test OpenID provider failed:\n{done.stdout}\n{done.stderr}")
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
    return target


class OidcProvider:
    """``node provider.js`` on ``port``, knowing one client that returns to ``redirect_uri``."""

    def __init__(self, port: int, redirect_uri: str) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.redirect_uri = redirect_uri
        self.log = tempfile.NamedTemporaryFile(prefix="oidc-provider-", suffix=".log", delete=False)
        self.users_file = Path(tempfile.mkdtemp(prefix="oidc-users-")) / "users.json"
        self.set_users(USERS)
        self.process: subprocess.Popen[bytes] | None = None

    def set_users(self, users: dict[str, dict]) -> None:
        """What the provider says about its users from now on (as an administrator of it changes them)."""
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(users))
        tmp.replace(self.users_file)

    def start(self, timeout: float = 30.0) -> OidcProvider:
        directory = installed_dir()
        self.process = subprocess.Popen(
            ["node", str(directory / "provider.js"), str(self.port), CLIENT_ID, CLIENT_SECRET, self.redirect_uri,
             str(self.users_file)],
            cwd=directory, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while "listening" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"the test OpenID provider did not start:\n{output}")
            time.sleep(0.05)
        return self

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
        shutil.rmtree(self.users_file.parent, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The settings of a server that signs in with this provider."""
        return {"BOKEHSITE_OIDC_ISSUER": self.issuer, "BOKEHSITE_OIDC_CLIENT_ID": CLIENT_ID,
                "BOKEHSITE_OIDC_CLIENT_SECRET": CLIENT_SECRET, "BOKEHSITE_OIDC_PROVIDER_NAME": "Test ID"}

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
