"""The command line: ``bokeh-server`` runs the server from any directory, as the old one did;
``bokehsite`` has the same as ``serve`` beside ``secret`` and ``createuser``.

The options become the environment variables the settings read (``bokehsite.settings`` is the
one reader of the environment), so a command-line server behaves as one configured by hand.
Its data (the SQLite database, the generated secret key, media) goes in ``./bokehsite-data``
of the directory it runs from unless ``--data-dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 5006
DATA_DIR_NAME = "bokehsite-data"
APPLICATION = "bokehsite.asgi:application"
# Seconds one app may take to run once when it is checked before the server starts.
APP_CHECK_TIMEOUT = 60


class UsageError(Exception):
    """A command line that cannot run; the message says why, and the command exits 2."""


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ip", default=DEFAULT_IP, help=f"address to listen on (default {DEFAULT_IP}; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("-m", "--multi-user", action="store_true",
                        help="multi-user mode: accounts, API tokens, private documents (default: single-user, everyone is defaultuser)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"where the SQLite database, the secret key and media live (default ./{DATA_DIR_NAME})")
    parser.add_argument("--database-url", default=None,
                        help="a database instead of SQLite in the data directory, e.g. postgres://user:pass@host:5432/name")
    parser.add_argument("--redis-url", default=None,
                        help="the Redis channel layer, e.g. redis://127.0.0.1:6379/0 (needed by --workers over 1)")
    parser.add_argument("--allow-registration", action=argparse.BooleanOptionalAction, default=None,
                        help="in multi-user mode, whether people may register themselves (default: allowed)")
    sso = parser.add_argument_group("single sign-on", "OpenID Connect, in multi-user mode; the provider must know "
                                    "https://<host>/oidc/callback/ as a redirect URI")
    sso.add_argument("--oidc-issuer", default=None, metavar="URL",
                     help="the provider's issuer URL (its endpoints come from URL/.well-known/openid-configuration)")
    sso.add_argument("--oidc-client-id", default=None, metavar="ID", help="this server's client id at the provider")
    sso.add_argument("--oidc-client-secret", default=None, metavar="SECRET",
                     help="its client secret (better in $BOKEHSITE_OIDC_CLIENT_SECRET: a command line is visible to "
                          "every user of the machine)")
    sso.add_argument("--no-local-login", action="store_true",
                     help="no passwords: people log in only with single sign-on")
    parser.add_argument("--workers", type=int, default=1,
                        help="Daphne processes sharing the port and the data (default 1; more need PostgreSQL and Redis)")
    apps = parser.add_argument_group("Bokeh apps", "APP is what `bokeh serve` takes: a .py script, a .ipynb notebook, or a "
                                     "directory with main.py or main.ipynb; each is served at /apps/<name>/")
    apps.add_argument("apps", nargs="*", metavar="APP", help="Bokeh apps to serve (each is run once to check it first)")
    apps.add_argument("--dev", action="store_true", help="development: new sessions run the apps' code as it is on disk now")
    apps.add_argument("--public-app", action="append", default=[], metavar="NAME",
                      help="in multi-user mode, an app anyone may open without an account (repeatable)")
    apps.add_argument("--unused-session-lifetime", type=int, default=None, metavar="MILLISECONDS",
                      help="how long an app session nobody is connected to lives on, in milliseconds as for "
                           "`bokeh serve` (default 15000)")
    apps.add_argument("--app-workers", type=int, default=None, metavar="M",
                      help="processes that run the apps' code, apart from the Daphne workers (default: one per core)")


def _parser(prog: str, *, subcommands: bool) -> argparse.ArgumentParser:
    description = "Serve, store and stream interactive Bokeh plots."
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if not subcommands:
        _serve_arguments(parser)
        parser.set_defaults(command="serve")
        return parser
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_arguments(commands.add_parser("serve", help="run the server (as bokeh-server does)", description=description))
    commands.add_parser("secret", help="print a new random SECRET_KEY")
    hosts = commands.add_parser(
        "app-hosts", help="run app processes for servers started by hand (Daphne with BOKEHSITE_APP_PROCESSES=0)",
        description="Run the processes that run Bokeh apps' code for bokehsite servers started by hand, reaching them "
                    "at SERVER_URL (a balancer in front of them, say). They need the servers' SECRET_KEY, and "
                    "the same apps (APP, else $BOKEHSITE_APPS).")
    hosts.add_argument("server_url", metavar="SERVER_URL", help="where the servers are reached, e.g. http://127.0.0.1:8000/")
    hosts.add_argument("apps", nargs="*", metavar="APP", help="the apps the servers serve (default $BOKEHSITE_APPS)")
    hosts.add_argument("--app-workers", type=int, default=None, metavar="M", help="how many (default: one per core)")
    hosts.add_argument("--dev", action="store_true", help="new sessions run the apps' code as it is on disk now")
    hosts.add_argument("--data-dir", type=Path, default=None, help=f"the servers' data directory (default ./{DATA_DIR_NAME})")
    create = commands.add_parser("createuser", help="create an account in the server's database")
    create.add_argument("username")
    create.add_argument("--staff", action="store_true", help="also a staff superuser, who may use /admin/")
    create.add_argument("--data-dir", type=Path, default=None, help=f"the server's data directory (default ./{DATA_DIR_NAME})")
    create.add_argument("--database-url", default=None, help="the server's database, if not SQLite in the data directory")
    return parser


def _configure(args: argparse.Namespace) -> None:
    """Turn the options into the environment the settings read, then set Django up."""
    data_dir = args.data_dir or Path(os.environ.get("BOKEHSITE_DATA_DIR") or Path.cwd() / DATA_DIR_NAME)
    os.environ["BOKEHSITE_DATA_DIR"] = str(Path(data_dir).resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bokehsite.settings")
    if getattr(args, "database_url", None):
        os.environ["DATABASE_URL"] = args.database_url
    if getattr(args, "redis_url", None):
        os.environ["REDIS_URL"] = args.redis_url
    if getattr(args, "multi_user", False):
        os.environ["BOKEHSITE_MULTI_USER"] = "1"
    if getattr(args, "allow_registration", None) is not None:
        os.environ["BOKEHSITE_ALLOW_REGISTRATION"] = "1" if args.allow_registration else "0"
    for option, name in (("oidc_issuer", "BOKEHSITE_OIDC_ISSUER"), ("oidc_client_id", "BOKEHSITE_OIDC_CLIENT_ID"),
                         ("oidc_client_secret", "BOKEHSITE_OIDC_CLIENT_SECRET")):
        if getattr(args, option, None):
            os.environ[name] = getattr(args, option)
    if getattr(args, "no_local_login", False):
        os.environ["BOKEHSITE_LOCAL_LOGIN"] = "0"
    ip = getattr(args, "ip", None)
    if ip and ip not in ("127.0.0.1", "localhost", "::1") and "ALLOWED_HOSTS" not in os.environ:
        # Listening beyond loopback: answer for this machine's names and the address given, never
        # for any Host (a page on another site could reach the server by a name it controls).
        names = {"localhost", "127.0.0.1", "[::1]", socket.gethostname(), socket.getfqdn()}
        if ip not in ("0.0.0.0", "::"):
            names.add(f"[{ip}]" if ":" in ip else ip)
        os.environ["ALLOWED_HOSTS"] = ",".join(sorted(names))

    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as e:
        raise UsageError(str(e)) from None


def _check_serve(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {args.port}")
    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.workers > 1 and ":" in args.ip:
        raise UsageError("--workers over 1 share one IPv4 socket: give an IPv4 --ip")
    if args.unused_session_lifetime is not None and args.unused_session_lifetime < 1:
        raise UsageError(f"--unused-session-lifetime must be 1 millisecond or more, not {args.unused_session_lifetime}")
    _check_app_workers(args)
    if args.workers > 1:
        database = args.database_url or os.environ.get("DATABASE_URL", "")
        redis = args.redis_url or os.environ.get("REDIS_URL", "")
        missing = [name for name, value in (("--database-url postgres://...", database.startswith(("postgres://", "postgresql://"))),
                                            ("--redis-url redis://...", redis.startswith(("redis://", "rediss://", "unix://"))))
                   if not value]
        if missing:
            raise UsageError(
                f"--workers {args.workers} runs {args.workers} processes that must share their documents and live "
                f"changes: that needs PostgreSQL and Redis; give {' and '.join(missing)}")


def _check_app_workers(args: argparse.Namespace) -> None:
    if args.app_workers is not None and args.app_workers < 1:
        raise UsageError(f"--app-workers must be 1 or more, not {args.app_workers}")


def _app_workers(args: argparse.Namespace) -> int:
    return args.app_workers or os.cpu_count() or 1


def _check_apps(args: argparse.Namespace) -> list[str]:
    """Check the apps (given, else $BOKEHSITE_APPS) and hand them to the settings; their names.

    Each app runs once in a process of its own (``python -m appserver.check``): app code never
    runs in the server's processes, and an app that fails stops the server before it starts."""
    from appserver.loading import AppLoadError, app_specs

    given = args.apps or [path for path in os.environ.get("BOKEHSITE_APPS", "").split(os.pathsep) if path.strip()]
    try:
        specs = app_specs(given)
    except AppLoadError as e:
        raise UsageError(str(e)) from None
    names = [spec.name for spec in specs]
    if unknown := [name for name in getattr(args, "public_app", []) if name not in names]:
        raise UsageError(f"--public-app {unknown[0]}: no app of that name (apps: {', '.join(names) or 'none'})")
    if specs:
        _run_app_check([str(spec.path) for spec in specs])
    os.environ["BOKEHSITE_APPS"] = os.pathsep.join(str(spec.path) for spec in specs)
    if getattr(args, "public_app", None):
        os.environ["BOKEHSITE_PUBLIC_APPS"] = ",".join(args.public_app)
    if args.dev:
        os.environ["BOKEHSITE_APP_DEV"] = "1"
    if getattr(args, "unused_session_lifetime", None) is not None:
        os.environ["BOKEHSITE_UNUSED_SESSION_LIFETIME"] = str(args.unused_session_lifetime / 1000)
    return names


def _run_app_check(paths: list[str]) -> None:
    import appserver

    # The checking process imports this very code (a clone's, when that is what runs here), after
    # whatever the user's PYTHONPATH puts first.
    code_root = str(Path(appserver.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), code_root]))}
    timeout = APP_CHECK_TIMEOUT * len(paths)
    try:
        done = subprocess.run([sys.executable, "-m", "appserver.check", *paths], env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UsageError(f"checking the apps took more than {timeout} seconds: does one wait or loop forever "
                         f"when it runs?") from None
    lines = done.stdout.strip().splitlines()
    try:
        errors = json.loads(lines[-1])["errors"]
    except (IndexError, ValueError, KeyError, TypeError):
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise UsageError(f"checking the apps failed (exit status {done.returncode}):\n{tail}") from None
    if errors:
        failed = "an app fails" if len(errors) == 1 else f"{len(errors)} apps fail"
        raise UsageError(f"{failed} when run once to check:\n  " + "\n  ".join(errors))


def _check_sso() -> None:
    """Read the OpenID provider's configuration now, so that a wrong issuer stops the server
    before anyone tries to log in."""
    from django.conf import settings

    if not settings.BOKEHSITE_OIDC_ISSUER:
        return
    if not settings.BOKEHSITE_MULTI_USER:
        raise UsageError("single sign-on (--oidc-issuer) needs multi-user mode (-m)")
    from accounts import oidc

    try:
        oidc.provider()
    except oidc.ProviderUnreachable as e:
        raise UsageError(str(e)) from None
    print(f"bokeh-server: single sign-on with {settings.BOKEHSITE_OIDC_ISSUER}", flush=True)


def _listen(ip: str, port: int) -> socket.socket:
    """The listening socket, made here so that a port in use is said plainly and several
    workers can share it (each accepts from it)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {ip}:{port}: {e.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _daphne_arguments(sock: socket.socket) -> list[str]:
    from django.conf import settings

    limit = str(settings.BOKEHSITE_MAX_BODY_BYTES)  # Daphne's own limit is 1 MiB; a body may be this large
    if sock.family == socket.AF_INET6:
        # Twisted adopts only IPv4 descriptors from a command line: Daphne binds the address itself.
        host, port = sock.getsockname()[:2]
        sock.close()
        where = ["-b", host, "-p", str(port)]
    else:
        where = ["--fd", str(sock.fileno())]
    return [*where, "--websocket-max-message-size", limit, "--websocket-max-frame-size", limit, APPLICATION]


def serve(args: argparse.Namespace) -> int:
    _check_serve(args)
    apps = _check_apps(args)
    if apps:  # the app hosts run beside the Daphne workers, and reach them here
        os.environ["BOKEHSITE_APP_PROCESSES"] = "0"
    _configure(args)
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    _check_sso()
    sock = _listen(args.ip, args.port)
    host = f"[{args.ip}]" if ":" in args.ip else ("localhost" if args.ip == "127.0.0.1" else args.ip)
    mode = "multi-user" if settings.BOKEHSITE_MULTI_USER else "single-user"
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    if apps:
        workers += f", {_app_workers(args)} app workers"
    print(f"bokeh-server: serving http://{host}:{args.port}/ ({mode}{workers}; data in {settings.DATA_DIR})", flush=True)
    for name in apps:
        print(f"bokeh-server: app {name} at http://{host}:{args.port}/apps/{name}/", flush=True)
    if apps and settings.BOKEHSITE_APP_DEV:
        print("bokeh-server: dev mode: new sessions use changed code", flush=True)
    print("bokeh-server: press Ctrl-C to stop", flush=True)
    if args.workers == 1 and not apps:
        from daphne.cli import CommandLineInterface

        try:
            CommandLineInterface().run(_daphne_arguments(sock))  # stops on SIGINT and SIGTERM
        finally:
            sock.close()
        print("bokeh-server: stopped", flush=True)
        return 0
    return _run_processes(sock, args, apps)


def _run_processes(sock: socket.socket, args: argparse.Namespace, apps: list[str]) -> int:
    """Run the Daphne workers accepting from ``sock`` and the app hosts, as a process manager:
    one that exits is started again; Ctrl-C or SIGTERM stops them all."""
    from bokehsite.processes import Kind, ProcessManager

    manager = ProcessManager(say=lambda line: print(f"bokeh-server: {line}", flush=True))
    daphne = Kind("Daphne worker", [sys.executable, "-m", "daphne", *_daphne_arguments(sock)], pass_fds=(sock.fileno(),))
    manager.start(daphne, args.workers)
    if apps:
        from appserver.supervisor import host_command

        local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(args.ip, args.ip)
        command, env = host_command(f"http://{f'[{local}]' if ':' in local else local}:{args.port}/")
        manager.start(Kind("app worker", command, env), _app_workers(args))
    try:
        code = manager.run()
    finally:
        sock.close()
    print("bokeh-server: stopped", flush=True)
    return code


def app_hosts(args: argparse.Namespace) -> int:
    """``bokehsite app-hosts SERVER_URL [APP...]``: app hosts for servers started by hand."""
    _check_app_workers(args)
    if not args.server_url.startswith(("http://", "https://")):
        raise UsageError(f"SERVER_URL must be an http:// or https:// address, not {args.server_url!r}")
    if not _check_apps(args):
        raise UsageError("no apps: give them as arguments or in $BOKEHSITE_APPS")
    _configure(args)
    from appserver.supervisor import host_command
    from bokehsite.processes import Kind, ProcessManager

    manager = ProcessManager(say=lambda line: print(f"bokehsite app-hosts: {line}", flush=True))
    command, env = host_command(args.server_url.rstrip("/") + "/")
    manager.start(Kind("app worker", command, env), _app_workers(args))
    print(f"bokehsite app-hosts: {_app_workers(args)} app workers for {args.server_url}; press Ctrl-C to stop", flush=True)
    return manager.run()


def createuser(args: argparse.Namespace) -> int:
    _configure(args)
    from django.contrib.auth import get_user_model, password_validation
    from django.core.exceptions import ValidationError
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    User = get_user_model()
    if User.objects.filter(username=args.username).exists():
        raise UsageError(f"there is already a user called {args.username!r}")
    # Asked for at a terminal; read from standard input otherwise (scripts: echo "$PW" | bokehsite createuser ...).
    password = getpass.getpass(f"Password for {args.username}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    user = User(username=args.username, is_staff=args.staff, is_superuser=args.staff)
    try:
        password_validation.validate_password(password, user)
    except ValidationError as e:
        raise UsageError("password refused: " + " ".join(e.messages)) from None
    user.set_password(password)
    user.save()
    print(f"bokehsite: created {'staff user' if args.staff else 'user'} {args.username}")
    return 0


def _run(prog: str, argv: Sequence[str] | None, *, subcommands: bool) -> int:
    args = _parser(prog, subcommands=subcommands).parse_args(argv)
    try:
        if args.command == "secret":
            print(secrets.token_urlsafe(50))
            return 0
        if args.command == "createuser":
            return createuser(args)
        if args.command == "app-hosts":
            return app_hosts(args)
        return serve(args)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: stopped", flush=True)
        return 0


def bokeh_server(argv: Sequence[str] | None = None) -> int:
    """``bokeh-server [options]``."""
    return _run("bokeh-server", argv, subcommands=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``bokehsite serve|secret|createuser ...``."""
    return _run("bokehsite", argv, subcommands=True)


if __name__ == "__main__":
    sys.exit(main())
