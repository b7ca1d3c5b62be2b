"""Views across real server processes: a dataset uploaded through one Daphne is viewed through
another (a shared data directory and database), and, on the Redis channel layer, rows appended
through one reach a view held open on the other."""

import asyncio
import os

import numpy as np
import pytest
import websockets
from bokeh.document import Document as BokehDocument
from django.conf import settings

from bokehsite import protocol
from bokehsite.client import Session, figure, server_source
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

ROWS = 200_000


async def ask(url: str, document_id: str, request: protocol.View, then=None) -> list[protocol.ViewData]:
    """Ask for a view; with ``then`` (a coroutine function), run it and wait for the view again."""
    async with websockets.connect(protocol.url(url, document_id), max_size=None) as socket:
        protocol.decode(await socket.recv(), sender=protocol.SERVER)
        await socket.send(request.encode())
        answers = []
        for _ in range(1 if then is None else 2):
            while True:
                message, _ = protocol.decode(await asyncio.wait_for(socket.recv(), 20), sender=protocol.SERVER)
                if isinstance(message, protocol.ViewData):
                    answers.append(message)
                    break
            if then is not None and len(answers) == 1:
                await then()
        return answers


def test_a_dataset_uploaded_through_one_process_is_viewed_through_another(tmp_path):
    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_DATASET_DIR": str(tmp_path),
           **({"REDIS_URL": os.environ["REDIS_URL"]} if "REDIS_URL" in os.environ else {})}
    x = np.arange(ROWS, dtype=np.float64)
    y = np.sin(x / 1000)
    with DaphneServer(env=env) as first, DaphneServer(env=env) as second:
        with Session(first.url) as session:
            dataset = session.upload_dataset("sine", {"x": x, "y": y}, require_sorted_x=True)
            p = figure(width=500, height=200)
            source = server_source(dataset, "line")
            p.line("x", "y", source=source)
            doc = BokehDocument()
            doc.add_root(p)
            session.use_doc("sine")
            document_id = session.push(doc)["id"]

            request = protocol.View(1, source.id, ROWS - 5000, ROWS + 5000, 500, 200)
            if "REDIS_URL" not in os.environ:
                [view] = asyncio.run(ask(second.url, document_id, request))
            else:  # rows appended through the first process reach the view held on the second
                def append():
                    session.append_dataset("sine", {"x": np.arange(ROWS, ROWS + 1000, dtype=np.float64),
                                                    "y": np.zeros(1000)})

                view, refreshed = asyncio.run(ask(second.url, document_id, request, lambda: asyncio.to_thread(append)))
                assert (refreshed.id, refreshed.rows) == (1, 6000)
    assert (view.kind, view.rows) == ("line", 5000)
