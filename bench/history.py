"""Rebuilding any version of a long history: a document streamed 10,000 times, then versions
picked at random rebuilt as the API serves them (``GET .../doc/?version=V``).

It runs in this process on a fresh database (SQLite in a temporary directory, or
``--database-url``), with the server's default settings unless told otherwise: a snapshot every
``BOKEHSITE_SNAPSHOT_EVERY`` changes (500), so a version is its snapshot plus at most 499 changes.

    .venv/bin/python bench/history.py [--versions 10000] [--points 10] [--samples 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, revision, server_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=10_000, help="changes streamed after the document is created")
    parser.add_argument("--points", type=int, default=10, help="points each change appends")
    parser.add_argument("--samples", type=int, default=200, help="random versions rebuilt")
    parser.add_argument("--database-url", help="another database (PostgreSQL: created if missing)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bokehsite-bench-history-") as data_dir:
        os.environ.update(server_env(data_dir, args.database_url))
        os.environ["DJANGO_SETTINGS_MODULE"] = "bokehsite.settings"
        os.environ.setdefault("BOKEHSITE_HISTORY", str(args.versions + 1))  # keep every version
        import django

        django.setup()
        import bokehsite.asgi  # noqa: F401  (as a server starts: its views loaded, and what they made frozen)

        run(args)


def run(args: argparse.Namespace) -> None:
    import numpy as np
    from django.conf import settings
    from accounts.users import default_user
    from django.test import Client

    from bokehsite import wire
    from documents import replay, services
    from documents.changes import PatchRequest
    from documents.models import Snapshot
    from tests.helpers import line_document, plain, store, stream_patch

    user = default_user()  # single-user mode: the in-process client acts as this user
    services.owned_documents(user).filter(title="history").delete()
    doc = line_document()
    document = store(user, "history", doc)
    source_id = doc.get_model_by_name("ex_line").data_source.id
    rng = np.random.default_rng(1)

    started = time.perf_counter()
    batch = 100  # what group commit stores in one transaction when a script streams fast
    for first in range(0, args.versions, batch):
        requests = []
        for i in range(first, min(first + batch, args.versions)):
            x = np.arange(i * args.points, (i + 1) * args.points, dtype=float) + 6
            requests.append(PatchRequest(*plain(*stream_patch(doc, source_id, x, rng.standard_normal(args.points))),
                                         author=user))
        services.apply_changes(document, requests)
    stored = time.perf_counter() - started
    document.refresh_from_db()
    current = document.version

    rebuild, served, worst = [], [], (0.0, 0)
    client = Client(HTTP_HOST="localhost")
    versions = random.Random(2).sample(range(1, current + 1), min(args.samples, current))
    replay.live_documents.discard(document.id)
    for version in versions:
        t = time.perf_counter()
        _, bundle = services.document_bundle(document, version)
        elapsed = time.perf_counter() - t
        rebuild.append(elapsed)
        worst = max(worst, (elapsed, version))
        header, buffers = wire.unpack(bundle)
        x = wire.load_document(header["doc"], buffers).get_model_by_name("ex_line").data_source.data["x"]
        assert len(x) == 5 + (version - 1) * args.points, (version, len(x))  # it is that version
    for version in versions[:50]:
        t = time.perf_counter()
        response = client.get(f"/api/documents/{document.id}/doc/", {"version": version},
                              HTTP_ACCEPT=wire.CONTENT_TYPE)
        served.append(time.perf_counter() - t)
        assert response.status_code == 200

    def ms(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000:.1f}"

    print(f"# bench/history.py at {revision()}; {machine()}")
    print(f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
          f"snapshot every {settings.BOKEHSITE_SNAPSHOT_EVERY} changes, history {settings.BOKEHSITE_HISTORY} versions")
    print(f"{args.versions} streamed changes of {args.points} points stored in {stored:.1f} s "
          f"({args.versions / stored:.0f} changes/s, {batch} a transaction); document at version {current}, "
          f"{Snapshot.objects.filter(document=document).count()} snapshots")
    print("| what | samples | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for name, values in (("rebuild a version (services.document_bundle)", rebuild),
                         ("GET .../doc/?version=V (in-process client)", served)):
        print(f"| {name} | {len(values)} | {statistics.median(values) * 1000:.1f} | {ms(values, 90)} | "
              f"{ms(values, 99)} | {ms(values, 100)} |")
    print(f"slowest rebuild: version {worst[1]}, {worst[0] * 1000:.1f} ms")
    services.delete_document(document)


if __name__ == "__main__":
    main()
