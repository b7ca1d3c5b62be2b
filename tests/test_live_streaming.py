"""Live documents end to end: a real Daphne server, the Python client, followers."""

import asyncio
import os
import random
import signal
import time

import pytest
from bokeh.document import Document as BokehDocument
from bokeh.models import Div
from django.conf import settings

from bokehsite.client import Session, figure
from bokehsite.client.follower import Follower
from documents import services
from documents.models import Document, Event
from tests.helpers import SEED_ANIMATED, start_script, state, stored_version, wait_until
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

def test_the_seed_animation_runs_unchanged_and_survives_ctrl_c(live_server_url, tmp_path):
    process = start_script(SEED_ANIMATED, live_server_url, tmp_path, speedup=10)
    try:
        wait_until(lambda: stored_version("animated_line") >= 8)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert "KeyboardInterrupt" in stderr and "bokehsite: changes not sent" not in stderr
    document = Document.objects.get(title="animated_line")
    assert Event.objects.filter(document=document).count() == document.version - 1
    y = services.load_bokeh_document(document).get_model_by_name("ex_line").data_source.data["y"]
    assert sorted(y.tolist()) == [2, 4, 5, 6, 7]


def random_operation(rng, doc, step):
    """One random change through Bokeh's own API, of the kinds a script makes."""
    plot = doc.get_model_by_name("plot")
    renderer = doc.get_model_by_name("ex_line")
    source = renderer.data_source
    n = len(source.data["y"])
    kind = rng.choice(["stream", "stream", "stream", "patch", "replace", "property", "property", "root"])
    if kind == "stream":
        k = rng.randint(1, 20)
        source.stream({"x": [rng.random() for _ in range(k)], "y": [rng.random() for _ in range(k)]},
                      rollover=rng.choice([None, 50, 200]))
    elif kind == "patch" and n > 2:
        if rng.random() < 0.5:
            source.patch({"y": [(rng.randrange(n), rng.random())]})
        else:
            start = rng.randrange(n - 1)
            stop = rng.randrange(start + 1, n)
            source.patch({"x": [(slice(start, stop), [rng.random() for _ in range(stop - start)])]})
    elif kind == "replace":
        k = rng.randint(1, 30)
        source.data = {"x": [rng.random() for _ in range(k)], "y": [rng.randint(0, 100) for _ in range(k)]}
    elif kind == "property":
        rng.choice([
            lambda: setattr(renderer.glyph, "line_width", rng.uniform(1, 5)),
            lambda: setattr(renderer.glyph, "line_color", rng.choice(["red", "navy", "#33aa66"])),
            lambda: setattr(plot.title, "text", f"step {step}"),
            lambda: setattr(plot, "background_fill_color", rng.choice(["white", "ivory", "#eeeeee"])),
        ])()
    else:
        extra = [root for root in doc.roots if root is not plot]
        if extra and rng.random() < 0.5:
            doc.remove_root(rng.choice(extra))
        else:
            doc.add_root(Div(text=f"note {step}"))


def new_plot_document():
    p = figure(width=500, height=300, name="plot")
    p.line([0.0, 1.0, 2.0], [3.0, 1.0, 2.0], name="ex_line")
    doc = BokehDocument()
    doc.add_root(p)
    return doc


def test_a_thousand_random_changes_converge_everywhere(live_server_url):
    producer = Session(live_server_url)
    producer.use_doc("converge")
    doc = new_plot_document()
    producer.push(doc)
    rng = random.Random(1234)

    async def scenario():
        async with Follower(Session(live_server_url), "converge") as follower:
            for step in range(1000):
                random_operation(rng, doc, step)
                if step % 25 == 0:
                    await asyncio.sleep(0.01)  # let the follower receive while changes keep coming
            version = (await asyncio.to_thread(producer.push))["version"]
            await follower.wait_for(version)
            return follower.doc, version

    followed, version = asyncio.run(scenario())
    producer.close()
    rebuilt = Session(live_server_url).load_document("converge")
    assert version > 10
    assert state(rebuilt) == state(doc)
    assert state(followed) == state(doc)


def test_a_dropped_viewer_resumes_and_converges(live_server_url):
    producer = Session(live_server_url)
    producer.use_doc("reconnect")
    doc = new_plot_document()
    producer.push(doc)
    rng = random.Random(99)
    dropped, reconnections = [], []

    async def scenario():
        async with Follower(Session(live_server_url), "reconnect") as follower:
            original = follower.connection.on_open

            async def counting_open(hello):
                reconnections.append(follower.version)
                await original(hello)

            follower.connection.on_open = counting_open
            for step in range(300):
                random_operation(rng, doc, step)
                if step in (100, 200):  # drop it once it has caught up; changes go on meanwhile
                    dropped.append((await asyncio.to_thread(producer.push))["version"])
                    await follower.wait_for(dropped[-1])
                    follower.drop()
                if step % 10 == 0:
                    await asyncio.sleep(0.005)
            version = (await asyncio.to_thread(producer.push))["version"]
            await follower.wait_for(version)
            return follower.doc

    followed = asyncio.run(scenario())
    producer.close()
    assert reconnections == dropped and dropped[0] < dropped[1]  # it resumed from where it was
    assert state(followed) == state(doc)


@pytest.mark.skipif("REDIS_URL" not in os.environ, reason="needs REDIS_URL: the multi-process run uses Redis")
def test_two_server_processes_share_every_change_in_order(django_db_setup):
    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "REDIS_URL": os.environ["REDIS_URL"]}
    with DaphneServer(env=env) as first, DaphneServer(env=env) as second:
        producer = Session(first.url)
        producer.use_doc("two processes")
        doc = new_plot_document()
        producer.push(doc)
        source = doc.get_model_by_name("ex_line").data_source
        seen = []

        async def scenario():
            followers = [Follower(Session(second.url), "two processes",
                                  on_frame=lambda m: seen.append([i["version"] for i in getattr(m, "items", [])]))
                         for _ in range(3)]
            for follower in followers:
                await follower.__aenter__()
            for i in range(200):
                source.stream({"x": [float(i)], "y": [float(i % 7)]})
                if i % 20 == 0:
                    await asyncio.sleep(0.01)
            version = (await asyncio.to_thread(producer.push))["version"]
            for follower in followers:
                await follower.wait_for(version)
                await follower.__aexit__(None, None, None)
            return [follower.doc for follower in followers], version

        followed, version = asyncio.run(scenario())
        producer.close()
        stored = Session(first.url).load_document("two processes")
    assert len(stored.get_model_by_name("ex_line").data_source.data["x"]) == 203  # every stream, once
    delivered = [v for frame in seen for v in frame]
    assert sorted(delivered) == sorted(list(range(2, version + 1)) * 3)  # every change, to every viewer
    assert all(frame == sorted(frame) for frame in seen)
    for other in followed:
        assert state(other) == state(doc)


def test_a_script_survives_any_number_of_drops_spread_over_time(live_server_url, monkeypatch):
    from bokehsite.client import connection

    monkeypatch.setattr(connection, "HEALTHY_AFTER", 0.3)  # a connection up this long was healthy
    producer = Session(live_server_url)
    producer.use_doc("dropped again and again")
    doc = new_plot_document()
    producer.push(doc)
    source = doc.get_model_by_name("ex_line").data_source
    drops = len(connection.RECONNECT_DELAYS) + 3  # more than a run of failures may have
    for i in range(drops):
        producer._sync.drop()
        source.stream({"x": [float(i)], "y": [1.0]})
        producer.push()  # reconnects, resends, waits for the acknowledgement
        time.sleep(0.4)
    stored = Session(live_server_url).load_document("dropped again and again")
    producer.close()
    assert len(stored.get_model_by_name("ex_line").data_source.data["x"]) == 3 + drops
