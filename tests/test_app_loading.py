"""Bokeh apps as `bokeh serve` takes them (appserver.loading): named and described without running
them, built with Bokeh's own handlers, run once to check them, and rebuilt in dev mode when their
files change."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import nbformat
import pytest
from bokeh.document import Document

from appserver.loading import AppLoadError, AppSpec, Registry, app_specs, build_application, check

SCRIPT_APP = """
from bokeh.io import curdoc
from bokeh.plotting import figure

arguments = curdoc().session_context.request.arguments
plot = figure(title=f"arguments: {sorted(arguments)}", name="plot")
plot.line([1, 2, 3], [1, 4, 9])
curdoc().add_root(plot)
"""

DIRECTORY_MAIN = """
import os

from bokeh.io import curdoc
from bokeh.plotting import figure

# Read beside the app, as a directory app's data files are.
with open(os.path.join(os.path.dirname(__file__), "data.csv")) as f:
    rows = [line.split(",") for line in f.read().split()]
plot = figure(title="weather", name="plot")
plot.line([float(x) for x, _ in rows], [float(y) for _, y in rows])
curdoc().add_root(plot)
curdoc().title = "weather"
"""

APP_HOOKS = """
import os

def on_server_loaded(server_context):
    with open(os.path.join(os.path.dirname(__file__), "loaded.txt"), "a") as f:
        f.write("loaded\\n")

def on_session_created(session_context):
    with open(os.path.join(os.path.dirname(__file__), "loaded.txt"), "a") as f:
        f.write("session\\n")
"""


def write_script_app(folder: Path, name: str = "sliders", source: str = SCRIPT_APP) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def write_directory_app(folder: Path, name: str = "weather") -> Path:
    app = folder / name
    (app / "templates").mkdir(parents=True)
    (app / "static").mkdir()
    (app / "main.py").write_text(DIRECTORY_MAIN)
    (app / "data.csv").write_text("1,10\n2,20\n3,15\n")
    (app / "templates" / "index.html").write_text(
        "{% extends base %}{% block title %}Weather{% endblock %}")
    (app / "static" / "app.css").write_text("body { margin: 0 }\n")
    (app / "theme.yaml").write_text("attrs:\n  Plot:\n    background_fill_color: '#eeeeee'\n")
    (app / "app_hooks.py").write_text(APP_HOOKS)
    return app


def write_notebook_app(folder: Path, name: str = "explore") -> Path:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Explore"),
        nbformat.v4.new_code_cell("%matplotlib inline\nfrom bokeh.io import curdoc\nfrom bokeh.plotting import figure"),
        nbformat.v4.new_code_cell("plot = figure(title='notebook', name='plot')\nplot.scatter([1, 2], [3, 4])\n"
                                  "curdoc().add_root(plot)"),
    ])
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def document_of(spec: AppSpec) -> Document:
    """A document built by the app as a session would build it (without hooks or a request)."""
    doc = Document()
    build_application(spec).initialize_document(doc)
    return doc


def test_a_script_a_directory_and_a_notebook_are_named_after_their_file_or_directory(tmp_path, monkeypatch):
    paths = [write_script_app(tmp_path), write_directory_app(tmp_path), write_notebook_app(tmp_path)]
    monkeypatch.chdir(tmp_path)
    script, directory, notebook = app_specs(["sliders.py", str(paths[1]), paths[2]])
    assert script == AppSpec("sliders", tmp_path / "sliders.py", None, None)
    assert directory == AppSpec("weather", tmp_path / "weather", tmp_path / "weather" / "static",
                                tmp_path / "weather" / "templates" / "index.html")
    assert notebook == AppSpec("explore", tmp_path / "explore.ipynb", None, None)
    assert all(spec.path.is_absolute() for spec in (script, directory, notebook))


def test_finding_the_apps_runs_none_of_their_code(tmp_path):
    write_script_app(tmp_path, "loud", "open(__file__ + '.ran', 'w').close()\n")
    app_specs([tmp_path / "loud.py"])
    assert not (tmp_path / "loud.py.ran").exists()


def test_each_kind_of_app_runs_once_when_checked(tmp_path):
    specs = app_specs([write_script_app(tmp_path), write_directory_app(tmp_path), write_notebook_app(tmp_path)])
    for spec in specs:
        check(spec)
    # The directory app's hooks ran, once each.
    assert (tmp_path / "weather" / "loaded.txt").read_text() == "loaded\nsession\n"


def test_a_directory_app_gets_its_theme_template_and_data_file(tmp_path):
    (spec,) = app_specs([write_directory_app(tmp_path)])
    doc = document_of(spec)
    (plot,) = doc.roots
    assert doc.title == "weather"
    assert list(plot.renderers[0].data_source.data["y"]) == [10.0, 20.0, 15.0]
    assert plot.background_fill_color == "#eeeeee"  # theme.yaml
    assert doc.template.filename.endswith(os.path.join("templates", "index.html"))


def test_a_notebook_app_builds_its_plot(tmp_path):
    (spec,) = app_specs([write_notebook_app(tmp_path)])
    (plot,) = document_of(spec).roots
    assert plot.title.text == "notebook"


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(AppLoadError, match=f"{tmp_path / 'gone.py'}: no such file or directory"):
        app_specs([tmp_path / "gone.py"])


def test_what_is_not_an_app_is_refused_with_the_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "my app.py").write_text("")
    with pytest.raises(AppLoadError, match="notes.txt: an app is a .py script, a .ipynb notebook or a directory"):
        app_specs([tmp_path / "notes.txt"])
    with pytest.raises(AppLoadError, match="empty: a directory app needs a main.py or a main.ipynb"):
        app_specs([tmp_path / "empty"])
    with pytest.raises(AppLoadError, match="the app's name 'my app' must be letters"):
        app_specs([tmp_path / "my app.py"])


def test_two_apps_with_one_name_are_refused(tmp_path):
    write_script_app(tmp_path, "weather")
    write_directory_app(tmp_path / "more")
    with pytest.raises(AppLoadError, match="another app is also called 'weather'") as refused:
        app_specs([tmp_path / "weather.py", tmp_path / "more" / "weather"])
    assert str(tmp_path / "weather.py") in str(refused.value) and str(tmp_path / "more" / "weather") in str(refused.value)


def test_an_app_that_imports_a_missing_module_fails_its_check_naming_the_file_and_the_error(tmp_path):
    app = write_directory_app(tmp_path)
    (app / "main.py").write_text("import os\nimport no_such_module\n")
    (spec,) = app_specs([app])
    build_application(spec)  # it compiles: only running it fails
    with pytest.raises(AppLoadError) as failed:
        check(spec)
    message = str(failed.value)
    assert message.startswith(f"{app}: ModuleNotFoundError: No module named 'no_such_module'")
    assert "'main.py', line 2" in message
    assert "Traceback" in failed.value.detail


def test_a_syntax_error_fails_the_build(tmp_path):
    (spec,) = app_specs([write_script_app(tmp_path, "broken", "x = 1\ndef (:\n")])
    with pytest.raises(AppLoadError, match=r"broken.py: SyntaxError: invalid syntax \(Invalid syntax in 'broken.py' on line 2"):
        build_application(spec)


def test_a_failing_hook_or_an_app_that_raises_or_exits_fails_its_check(tmp_path):
    app = write_directory_app(tmp_path)
    (app / "app_hooks.py").write_text("def on_session_created(session_context):\n    raise ValueError('no database')\n")
    (spec,) = app_specs([app])
    with pytest.raises(AppLoadError, match=r"weather: ValueError: no database \(app_hooks.py, line 2\)"):
        check(spec)
    (spec,) = app_specs([write_script_app(tmp_path, "raises", "raise KeyError('column')\n")])
    with pytest.raises(AppLoadError, match=r"raises.py: KeyError: 'column'"):
        check(spec)
    (spec,) = app_specs([write_script_app(tmp_path, "exits", "import sys\nsys.exit(3)\n")])
    with pytest.raises(AppLoadError, match=r"exits.py: SystemExit: 3 \(exits.py, line 2\)"):
        check(spec)


def test_the_registry_builds_an_app_once(tmp_path):
    registry = Registry(app_specs([write_script_app(tmp_path)]))
    first = registry.application("sliders")
    (tmp_path / "sliders.py").write_text("raise SystemExit\n")
    assert registry.application("sliders") is first  # not dev mode: changes are not looked for
    with pytest.raises(KeyError):
        registry.application("other")


def test_in_dev_mode_the_registry_rebuilds_an_app_whose_files_changed(tmp_path):
    app = write_directory_app(tmp_path)
    registry = Registry(app_specs([app]), dev=True)
    first = registry.application("weather")
    assert registry.application("weather") is first  # nothing changed
    (app / "data.csv").write_text("1,5\n2,6\n3,7\n4,8\n")
    second = registry.application("weather")
    assert second is not first
    doc = Document()
    second.initialize_document(doc)
    assert list(doc.roots[0].renderers[0].data_source.data["y"]) == [5.0, 6.0, 7.0, 8.0]
    # A change of the code itself, even one that keeps the file's size and time stamp's second.
    main = app / "main.py"
    stat = main.stat()
    main.write_text(DIRECTORY_MAIN.replace('curdoc().title = "weather"', 'curdoc().title = "climate"'))
    os.utime(main, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    doc = Document()
    registry.application("weather").initialize_document(doc)
    assert doc.title == "climate"


def test_the_documents_own_session_destroyed_callbacks_run_as_under_bokeh_serve(tmp_path):
    # bokeh serve adds Bokeh's DocumentLifecycleHandler to every app: curdoc().on_session_destroyed.
    path = write_script_app(tmp_path, "farewell", textwrap.dedent("""
        from bokeh.io import curdoc
        from bokeh.models import Div

        def farewell(session_context):
            open(__file__ + ".destroyed", "w").write(session_context.id)

        curdoc().on_session_destroyed(farewell)
        curdoc().add_root(Div(text="hello"))
    """))
    (spec,) = app_specs([path])
    check(spec)
    assert (tmp_path / "farewell.py.destroyed").read_text()
