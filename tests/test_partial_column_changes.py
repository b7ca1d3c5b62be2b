"""``source.data.update(...)`` sends only the columns it names (a ColumnDataChanged with
``cols``). A script that follows the document applies it as the browser does: the source's
other columns stay."""

import subprocess
import sys
import textwrap

from tests.servers import ROOT

# In a process of its own, as a script runs: no Django, only the client.
FOLLOWER = textwrap.dedent("""
    from bokeh.core.serialization import Serializer
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    from bokehsite import protocol, wire
    from bokehsite.client.inbox import Inbox

    theirs = Document()
    theirs.add_root(ColumnDataSource({"x": [1.0, 2.0], "y": [3.0, 4.0], "colour": ["red", "blue"]}, name="s"))
    serialized = wire.document_json(theirs)
    mine = wire.load_document(serialized.content, serialized.buffers)
    changes = []
    theirs.on_change(changes.append)
    theirs.get_model_by_name("s").data.update({"y": [5.0, 6.0]})
    serializer = Serializer(references=theirs.models)
    patch = {"events": [serializer.encode(event) for event in changes]}
    header, buffers = wire.unpack(wire.pack({"patch": patch}, serializer.buffers))
    inbox = Inbox(mine, 1)
    inbox.receive(protocol.Patches(1, 2, [{"version": 2, "patch": header["patch"]}]), buffers)
    inbox.apply(*inbox.next(0))
    print(sorted((name, [str(v) for v in values]) for name, values in mine.get_model_by_name("s").data.items()))
""")


def test_a_followed_change_of_some_columns_keeps_the_others():
    result = subprocess.run([sys.executable, "-c", FOLLOWER], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('colour', ['red', 'blue']), ('x', ['1.0', '2.0']), ('y', ['5.0', '6.0'])]"
