"""Shared pieces of the hosted apps' tests: apps in the shapes ``bokeh serve`` takes (written
into a test's folder at test time), a Daphne serving them on a database of its own, and ways to
drive an app's page in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.helpers import wait_until
from tests.servers import ROOT, DaphneServer, children_of

# --- apps ------------------------------------------------------------------------------------------

# Widgets with Python callbacks: a slider rescales a red wave, a button counts its clicks, a
# checkbox group shows and hides two lines, another button patches and streams a source.
WIDGETS = """
import numpy as np
from bokeh.events import ButtonClick
from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import Button, CheckboxGroup, ColumnDataSource, Div, Slider
from bokeh.plotting import figure

X = np.linspace(0, 4 * np.pi, 60)
wave = ColumnDataSource(data={"x": X, "y": np.sin(X)}, name="wave")
amplitude = Slider(title="amplitude", value=1, start=0, end=5, step=1, name="amplitude", width=300)
plot = figure(width=450, height=260, y_range=(-6, 6), toolbar_location=None, name="plot")
sine = plot.line("x", "y", source=wave, line_width=3, color="red", name="sine")
cosine = plot.line(X, 3 * np.cos(X), line_width=3, color="blue", name="cosine")

def rescale(attr, old, new):
    wave.data = {"x": X, "y": new * np.sin(X)}

amplitude.on_change("value", rescale)

clicks = Div(text="clicked 0 times", name="clicks")
button = Button(label="Count", name="count")
counted = [0]

def clicked(event):
    counted[0] += 1
    clicks.text = f"clicked {counted[0]} times"

button.on_event(ButtonClick, clicked)

lines = CheckboxGroup(labels=["sine", "cosine"], active=[0, 1], name="lines")

def toggle(attr, old, new):
    sine.visible = 0 in new
    cosine.visible = 1 in new

lines.on_change("active", toggle)

points = ColumnDataSource(data={"x": [0, 1, 2], "y": [0, 0, 0]}, name="points")
grow = Button(label="Grow", name="grow")

def grow_points(event):
    points.patch({"y": [(0, 7)]})
    points.stream({"x": [len(points.data["x"])], "y": [9]}, rollover=10)

grow.on_event(ButtonClick, grow_points)
dots = figure(width=300, height=200, toolbar_location=None)
dots.scatter("x", "y", source=points, size=8)
curdoc().add_root(column(amplitude, plot, row(button, clicks), lines, grow, dots))
"""

# A periodic callback streams a point every 200 ms, as fourier_animated.py animates.
ANIMATED = """
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

ticks = ColumnDataSource(data={"x": [0], "y": [0]}, name="ticks")
plot = figure(width=300, height=200, toolbar_location=None)
plot.line("x", "y", source=ticks)

def tick():
    n = ticks.data["x"][-1] + 1
    ticks.stream({"x": [n], "y": [n % 5]}, rollover=100)

curdoc().add_periodic_callback(tick, 200)
curdoc().add_root(plot)
"""

# A periodic callback replaces one column in place (source.data.update), as fourier_animated.py
# rolls its waves: the source's other columns, one of them drawn as colours, stay.
ROLLING = """
import numpy as np
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

x = np.linspace(0, 2 * np.pi, 40)
rolling = ColumnDataSource(data={"x": x, "y": np.sin(x), "colour": ["navy", "firebrick"] * 20}, name="rolling")
plot = figure(width=300, height=200, toolbar_location=None)
plot.scatter("x", "y", color="colour", source=rolling)

def roll():
    rolling.data.update({"y": np.roll(rolling.data["y"], -1)})

curdoc().add_periodic_callback(roll, 100)
curdoc().add_root(plot)
"""

# ?N=7 builds seven points (session_context.request.arguments); the viewer's name is shown, and
# the names of the cookies and headers the app was given.
ARGUMENTS = """
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div
from bokeh.plotting import figure

request = curdoc().session_context.request
n = int(request.arguments.get("N", [b"3"])[0])
points = ColumnDataSource(data={"x": list(range(n)), "y": list(range(n))}, name="points")
plot = figure(width=300, height=200, toolbar_location=None)
plot.scatter("x", "y", source=points)
seen = Div(text=f"cookies {sorted(request.cookies)} headers {sorted(h.lower() for h in request.headers)}",
           name="seen")
curdoc().add_root(column(Div(text=f"{n} points for {request.user}", name="who"), plot, seen))
"""

# A slider answers at once; a button's callback sleeps for ten seconds.
SLOW = """
import time
from bokeh.events import ButtonClick
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div, Slider

echo = Div(text="value 1", name="echo")
slider = Slider(title="value", value=1, start=0, end=10, step=1, name="value", width=300)
slider.on_change("value", lambda attr, old, new: setattr(echo, "text", f"value {new}"))
sleeper = Button(label="Sleep", name="sleep")
slept = Div(text="awake", name="slept")

def sleep(event):
    slept.text = "sleeping"
    time.sleep(10)
    slept.text = "slept"

sleeper.on_event(ButtonClick, sleep)
curdoc().add_root(column(slider, echo, sleeper, slept))
"""

# Its callback raises at value 2; the Div follows every other value.
RAISING = """
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

echo = Div(text="value 1", name="echo")
slider = Slider(title="value", value=1, start=0, end=10, step=1, name="value", width=300)

def follow(attr, old, new):
    if new == 2:
        raise ValueError("the callback refuses two")
    echo.text = f"value {new}"

slider.on_change("value", follow)
curdoc().add_root(column(slider, echo))
"""

# A periodic callback that takes a while and then changes the page, so that a change is still on
# its way when the session ends; its destroy callback leaves a marker file beside the script,
# named after the page's ?tag=.
BUSY = """
import time
from pathlib import Path
from bokeh.io import curdoc
from bokeh.models import Div

doc = curdoc()
tag = doc.session_context.request.arguments.get("tag", [b"untagged"])[0].decode()
beats = Div(text="0", name="beats")
counted = [0]

def beat():
    time.sleep(0.3)
    counted[0] += 1
    beats.text = str(counted[0])

# It runs after Bokeh has cleared the script's module and its models: what it uses, it brings along.
def destroyed(session_context, folder=Path(__file__).parent, tag=tag, counted=counted):
    (folder / f"destroyed-{tag}").write_text(str(counted[0]))

doc.add_periodic_callback(beat, 50)
doc.on_session_destroyed(destroyed)
doc.add_root(beats)
"""

# What selection_histogram.py and events_app.py use: a selection driving a Python callback,
# plot and button events reaching on_event (written down as events_app.py prints them), and a
# js_on_change callback whose change Python then sees. The plot has no axes or borders: its
# canvas is all data space, 0 to 6 both ways.
INTERACTIONS = """
from bokeh.events import ButtonClick, Tap
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, ColumnDataSource, CustomJS, Div, Slider
from bokeh.plotting import figure

points = ColumnDataSource(data={"x": [1, 2, 3, 4, 5], "y": [1, 5, 2, 4, 3]}, name="points")
plot = figure(width=300, height=300, x_range=(0, 6), y_range=(0, 6), tools="box_select",
              active_drag="box_select", toolbar_location=None, min_border=0, name="plot")
plot.axis.visible = False
plot.grid.visible = False
plot.scatter("x", "y", source=points, size=12)

chosen = Div(text="none selected", name="chosen")

def selected(attr, old, new):
    total = sum(points.data["y"][i] for i in new)
    chosen.text = f"selected {sorted(new)} y sum {total}"

points.selected.on_change("indices", selected)

seen = Div(text="no event", name="seen")

def record(attributes=()):
    def handler(event):
        values = " ".join(f"{name}={getattr(event, name):.1f}" for name in attributes)
        seen.text = f"{event.event_name} {values}".strip()
    return handler

plot.on_event(Tap, record(["x", "y"]))
button = Button(label="Press", name="press")
button.on_event(ButtonClick, record())

level = Slider(title="level", value=1, start=0, end=10, step=1, name="level", width=300)
mirrored = Div(text="", name="mirrored")
level.js_on_change("value", CustomJS(args={"div": mirrored}, code="div.text = `js saw ${cb_obj.value}`"))
echoed = Div(text="", name="echoed")
mirrored.on_change("text", lambda attr, old, new: setattr(echoed, "text", f"python saw {new}"))

curdoc().add_root(column(plot, chosen, button, seen, level, mirrored, echoed))
"""

# What patch_app.py and threaded apps use: a patch of a 2-D slice of an image column (every
# other row, some columns), and a thread that hands the document work through
# add_next_tick_callback and add_timeout_callback (the document may be changed only there).
UPDATES = """
import threading
import time
import numpy as np
from bokeh.events import ButtonClick
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, ColumnDataSource, Div
from bokeh.plotting import figure

doc = curdoc()
image = ColumnDataSource(data={"image": [np.zeros((4, 5))]}, name="image")
plot = figure(width=250, height=200, x_range=(0, 5), y_range=(0, 4), toolbar_location=None, name="plot")
plot.image("image", x=0, y=0, dw=5, dh=4, palette=["black", "white"], source=image)

def patch_rows(event):
    rows, columns = slice(0, 4, 2), slice(1, 4)
    image.patch({"image": [((0, rows, columns), np.full(2 * 3, 7.0))]})

patch = Button(label="Patch", name="patch")
patch.on_event(ButtonClick, patch_rows)

ticked = Div(text="waiting", name="ticked")
timed = Div(text="waiting", name="timed")

def show_ticked():
    ticked.text = f"next tick in {threading.current_thread().name.split('-')[0]}"

def show_timed():
    timed.text = f"timeout in {threading.current_thread().name.split('-')[0]}"

def work():
    time.sleep(0.2)
    doc.add_next_tick_callback(show_ticked)
    doc.add_timeout_callback(show_timed, 300)

start = Button(label="Work", name="work")
start.on_event(ButtonClick, lambda event: threading.Thread(target=work, name="worker", daemon=True).start())
doc.add_root(column(plot, patch, start, ticked, timed))
"""

# main.py that raises while it builds the document.
BROKEN = """
from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text="never shown"))
raise RuntimeError("broken on purpose while building")
"""

FINE = """
from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text="a fine app", name="fine"))
"""

BACKGROUND = "#abcdef"  # the directory app's theme.yaml paints its plot's background so


def write_script(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def write_directory_app(folder: Path, markers: Path, name: str = "dashboard") -> Path:
    """A directory app with everything ``bokeh serve`` reads: main.py reading a data file beside
    it, theme.yaml, templates/index.html extending Bokeh's page, static/, and app_hooks.py whose
    hooks leave marker files in ``markers`` (named after the page's ``?tag=``)."""
    app = folder / name
    (app / "templates").mkdir(parents=True)
    (app / "static").mkdir()
    markers.mkdir(parents=True, exist_ok=True)
    (app / "data.csv").write_text("x,y\n1,10\n2,20\n3,15\n4,40\n")
    (app / "main.py").write_text(textwrap.dedent("""
        import csv
        import os
        from bokeh.io import curdoc
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource, Div
        from bokeh.plotting import figure

        with open(os.path.join(os.path.dirname(__file__), "data.csv")) as f:
            rows = list(csv.DictReader(f))
        source = ColumnDataSource(data={"x": [float(r["x"]) for r in rows], "y": [float(r["y"]) for r in rows]},
                                  name="rows")
        plot = figure(width=300, height=200, toolbar_location=None, name="plot")
        plot.line("x", "y", source=source)
        curdoc().add_root(column(Div(text=f"{len(rows)} rows", name="count"), plot))
        curdoc().title = "Dashboard"
    """))
    (app / "theme.yaml").write_text(f"attrs:\n  Plot:\n    background_fill_color: '{BACKGROUND}'\n")
    (app / "templates" / "index.html").write_text(textwrap.dedent("""
        {% extends base %}
        {% block contents %}
          <h1 id="dashboard-heading">The dashboard's own heading</h1>
          <link rel="stylesheet" href="/apps/APP_NAME/static/style.css">
          {{ super() }}
        {% endblock %}
    """).replace("APP_NAME", name))
    (app / "static" / "style.css").write_text("#dashboard-heading { color: rebeccapurple; }\n")
    (app / "app_hooks.py").write_text(textwrap.dedent(f"""
        from pathlib import Path

        MARKERS = Path({str(markers)!r})

        def tag(session_context):
            return session_context.request.arguments.get("tag", [b"untagged"])[0].decode()

        def on_server_loaded(server_context):
            (MARKERS / "server-loaded").write_text("loaded")

        def on_session_created(session_context):
            (MARKERS / f"created-{{tag(session_context)}}").write_text(session_context.id)

        def on_session_destroyed(session_context):
            (MARKERS / f"destroyed-{{tag(session_context)}}").write_text(session_context.id)
    """))
    return app


def write_notebook(folder: Path, name: str = "notebook") -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A notebook app"),
        nbformat.v4.new_code_cell("from bokeh.io import curdoc\nfrom bokeh.models import Div"),
        nbformat.v4.new_code_cell('curdoc().add_root(Div(text="made in a notebook", name="notebook-div"))'),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


# --- a server of the apps --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def apps_database(tmp_path_factory) -> Path:
    """A migrated SQLite database with alice and bob (password PASSWORD), copied for each apps server:
    the apps' servers keep their sessions in a database of their own, apart from the tests' one."""
    folder = tmp_path_factory.mktemp("apps-db")
    path = folder / "db.sqlite3"
    env = {**_base_env(folder), "DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    create = ("from django.contrib.auth import get_user_model; "
              f"[get_user_model().objects.create_user(name, password={PASSWORD!r}) for name in ('alice', 'bob')]")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", create], cwd=ROOT, env=env, check=True, timeout=60)
    return path


def _base_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", "BOKEHSITE_DATA_DIR": str(data_dir),
            "SECRET_KEY": "apps-tests-secret-key-" + "x" * 40, "BOKEHSITE_THUMBNAILS": "0"}


@dataclass
class AppServer:
    server: DaphneServer
    folder: Path  # where its apps are

    @property
    def url(self) -> str:
        return self.server.url

    def output(self) -> str:
        return self.server.output()


def start_app_server(database: Path, folder: Path, apps: list[Path], **env: str) -> AppServer:
    """A Daphne serving ``apps`` on a copy of ``database``; the caller stops ``.server``."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    db = data / "db.sqlite3"
    shutil.copy(database, db)
    server = DaphneServer(env={**_base_env(data), "DATABASE_URL": f"sqlite:///{db}",
                               "BOKEHSITE_APPS": os.pathsep.join(str(p) for p in apps),
                               "BOKEHSITE_LOGIN_RATE": "1000/min", **env})
    server.env.pop("REDIS_URL", None)  # one process: the in-memory channel layer serves it
    return AppServer(server.start(), folder)


def app_host_pids(served: AppServer) -> list[int]:
    """The ids of the app host processes the server started (its children)."""
    return children_of(served.server.process.pid)


# --- plain HTTP ------------------------------------------------------------------------------------


def get(url: str, timeout: float = 60.0) -> tuple[int, str]:
    """Status and body of a GET (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def hidden(html: str, name: str) -> str:
    """A hidden input's value in an app page (``document``, ``key``)."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name!r} in the page"
    return found.group(1)


def frame_src(html: str) -> str:
    found = re.search(r'id="app-frame"[^>]*src="([^"]+)"', html)
    assert found, "no app frame in the page"
    return found.group(1).replace("&amp;", "&")


def session_document(url: str, html: str) -> dict:
    """The stored document of the session an app page (``html``, served by ``url``) opened, read
    with its frame's token, as JSON."""
    from bokehsite import wire

    query = frame_src(html).split("?", 1)[1]
    with urllib.request.urlopen(f"{url}api/documents/{hidden(html, 'document')}/doc/?{query}") as response:
        return wire.unpack(response.read())[0]


# --- the browser -----------------------------------------------------------------------------------


def open_app(page, url: str):
    """Open an app's page; returns its sandboxed frame once the session's document is live."""
    page.goto(url)
    live = page.frame_locator("#app-frame").locator("#live-status[data-status=live]")
    live.wait_for(timeout=60_000)
    # Attached, not visible: an app's own template (templates/index.html) lays out the page itself.
    page.frame_locator("#app-frame").locator("#plot[data-state=rendered]").wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(300)  # let the canvas paint
    return app_frame(page)


def app_frame(page):
    return next(frame for frame in page.frames if "/frame/" in frame.url)


def model_value(frame, name: str, expression: str):
    """``expression`` of the model called ``name`` in the frame's document (``m`` is the model)."""
    return frame.evaluate(f"(() => {{ const m = Bokeh.documents[0].get_model_by_name({name!r}); return {expression}; }})()")


def wait_for_model(frame, name: str, condition: str, timeout: float = 30_000) -> None:
    """Wait until ``condition`` holds of the model called ``name`` (``m``) in the frame."""
    frame.wait_for_function(
        f"() => {{ const d = Bokeh.documents[0]; const m = d && d.get_model_by_name({name!r}); return !!m && ({condition}); }}",
        timeout=timeout)


def press_slider(page, times: int = 1, index: int = 0) -> None:
    """Move a slider by ``times`` steps as a user does, from the keyboard."""
    handle = page.frame_locator("#app-frame").locator(".noUi-handle").nth(index)
    for _ in range(times):
        handle.press("ArrowRight")


def click_button(page, label: str) -> None:
    page.frame_locator("#app-frame").get_by_role("button", name=label).click()


def wait_for_file(path: Path, timeout: float = 15.0) -> str:
    wait_until(path.exists, timeout=timeout)
    return path.read_text()


def seconds(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start
