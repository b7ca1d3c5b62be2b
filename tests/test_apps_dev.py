"""Development mode (``bokeh-server --dev``, ``BOKEHSITE_APP_DEV``): a new session runs the app's
code as it is on disk now; without it, the code the app process loaded first."""

import re
import time

import pytest
import requests
from django.conf import settings

from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

APP = """from bokeh.io import curdoc
from bokeh.models import Div
curdoc().add_root(Div(text="{marker}"))
"""


def session_content(server: DaphneServer, name: str) -> bytes:
    """The stored document of a new session of ``name``, read through the key its page holds."""
    page = requests.get(f"{server.url}apps/{name}/", timeout=60)
    assert page.status_code == 200, page.text
    document = re.search(r"/documents/([0-9a-f-]{36})/frame/", page.text).group(1)
    key = re.search(r"frame-token/\?key=([^\"&]+)", page.text).group(1)
    content = requests.get(f"{server.url}api/documents/{document}/doc/", params={"key": key}, timeout=30)
    assert content.status_code == 200, content.text
    return content.content


@pytest.mark.parametrize("dev", [True, False])
def test_a_new_session_runs_the_code_on_disk_only_in_dev_mode(tmp_path, dev):
    app = tmp_path / "editing.py"
    app.write_text(APP.format(marker="first version"))
    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_APPS": str(app),
           "BOKEHSITE_APP_DEV": "1" if dev else "0"}
    with DaphneServer(env=env) as server:
        assert b"first version" in session_content(server, "editing")
        time.sleep(0.05)  # a later modification time than the first version's, on any filesystem
        app.write_text(APP.format(marker="second version"))
        expected, stale = (b"second version", b"first version") if dev else (b"first version", b"second version")
        content = session_content(server, "editing")
        assert expected in content and stale not in content
