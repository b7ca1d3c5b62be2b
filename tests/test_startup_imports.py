"""What a server process imports before it serves, so that its threads cannot race on imports."""

import subprocess
import sys
from pathlib import Path

import pytest

# A view's first Datashader import (in a worker thread) imports pandas; the import is held at one
# of pandas' own modules while the main thread checks a stream the way the server checks a change.
SCRIPT = """
import importlib.abc, os, sys, threading
os.environ["DJANGO_SETTINGS_MODULE"] = "bokehsite.settings"

reached = threading.Event()
streamed = threading.Event()

class HoldPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "pandas.core.frame" and threading.current_thread() is not threading.main_thread():
            reached.set()
            streamed.wait(10)
        return None

sys.meta_path.insert(0, HoldPandas())
import django
django.setup()
from bokeh.document import Document
from bokeh.models import ColumnDataSource

def first_import():
    import pandas  # noqa: F401
    reached.set()

worker = threading.Thread(target=first_import)
worker.start()
reached.wait(10)
source = ColumnDataSource({"x": [1.0]})
Document().add_root(source)
try:
    source.stream({"x": [2.0]})
finally:
    streamed.set()
    worker.join()
print(source.data["x"])
"""


@pytest.mark.timeout(60)
def test_a_stream_is_checked_while_another_thread_imports_pandas_for_the_first_time():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=Path(__file__).resolve().parent.parent,
                            capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[1.0, 2.0]"
