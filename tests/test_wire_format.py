"""The bundle format shared by client and server."""

import math
import struct

import numpy as np
import pytest
from bokeh.core.serialization import Buffer, Serialized
from bokeh.document import Document
from bokeh.models import ColumnDataSource

from bokehsite import wire
from tests.helpers import line_document


def columns(serialized):
    """{column name: its serialized value} for every ColumnDataSource in the content."""
    out = {}
    for obj in wire.model_objects(serialized.content):
        if obj["name"] == "ColumnDataSource":
            out.update(dict(obj["attributes"]["data"]["entries"]))
    return out


def test_it_round_trips_a_document_with_binary_arrays():
    doc = line_document(1000)
    serialized = wire.document_json(doc)
    header, buffers = wire.unpack(wire.pack({"doc": serialized.content}, serialized.buffers))
    loaded = Document.from_json(Serialized(header["doc"], buffers))
    source = loaded.get_model_by_name("ex_line").data_source
    original = doc.get_model_by_name("ex_line").data_source
    np.testing.assert_array_equal(source.data["x"], original.data["x"])
    np.testing.assert_array_equal(source.data["y"], original.data["y"])


def test_buffers_unpack_as_copies_or_as_views_of_the_bundle():
    data = np.arange(1000, dtype=np.float64).tobytes()
    bundle = wire.pack({"doc": {}}, [Buffer("a", b"xyz"), Buffer("b", data)])
    _, copies = wire.unpack(bundle)
    _, views = wire.unpack(bundle, views=True)
    assert [type(b.data) for b in copies] == [bytes, bytes]  # what Bokeh's deserializer needs
    assert all(isinstance(b.data, memoryview) and b.data.obj is bundle for b in views)  # nothing copied
    assert [(b.id, bytes(b.data)) for b in views] == [(b.id, b.data) for b in copies] == [("a", b"xyz"), ("b", data)]


def test_numeric_list_columns_become_binary_buffers():
    serialized = wire.document_json(line_document(5))
    cols = columns(serialized)
    assert cols["x"]["type"] == "ndarray" and cols["x"]["dtype"] == "int32"
    assert cols["y"]["type"] == "ndarray" and cols["y"]["dtype"] == "int32"
    ids = {b.id for b in serialized.buffers}
    assert cols["x"]["array"]["data"].id in ids


def test_floats_and_special_numbers_become_float64():
    doc = Document()
    doc.add_root(ColumnDataSource(data={"v": [1, 2.5, float("nan"), float("inf")]}))
    serialized = wire.document_json(doc)
    assert columns(serialized)["v"]["dtype"] == "float64"
    header, buffers = wire.unpack(wire.pack({"doc": serialized.content}, serialized.buffers))
    values = Document.from_json(Serialized(header["doc"], buffers)).roots[0].data["v"]
    assert values[:2].tolist() == [1, 2.5] and math.isnan(values[2]) and values[3] == math.inf


def test_non_numeric_columns_and_the_users_objects_are_left_alone():
    data = {"s": ["a", "b"], "b": [True, False], "nested": [[1, 2], [3]], "big": [2**40, 1]}
    doc = Document()
    source = ColumnDataSource(data=data)
    doc.add_root(source)
    cols = columns(wire.document_json(doc))
    assert cols["s"] == ["a", "b"]
    assert cols["b"] == [True, False]
    assert cols["nested"] == [[1, 2], [3]]
    assert cols["big"]["dtype"] == "float64"  # beyond int32: BokehJS has no int64
    assert source.data["big"] == [2**40, 1]  # the user's data is untouched


@pytest.mark.parametrize(
    "data, message",
    [
        (b"BK", "too short"),
        (b"NOPE\x00\x00\x00\x00", "must start with"),
        (wire.MAGIC + struct.pack(">I", 100) + b"{}", "runs past the end"),
        (wire.MAGIC + struct.pack(">I", 3) + b"{x}", "not valid JSON"),
        (wire.MAGIC + struct.pack(">I", 2) + b"[]", "must be a JSON object"),
        (wire.MAGIC + struct.pack(">I", 18) + b'{"buffers": [[1]]}', r"list of \[id, byte_length\] pairs"),
        (wire.pack({}, [Buffer("a", b"12345678")])[:-1], "runs past the end"),
        (wire.pack({}, [Buffer("a", b"1234")]) + b"junk", "4 bytes follow the last buffer"),
    ],
)
def test_it_rejects_malformed_bundles(data, message):
    with pytest.raises(wire.BundleError, match=message):
        wire.unpack(data)


def test_replace_payload_keeps_the_buffers():
    bundle = wire.pack({"doc": "old"}, [Buffer("a", b"abc"), Buffer("b", b"")])
    header, buffers = wire.unpack(wire.replace_payload(bundle, {"doc": "new", "title": "t"}))
    assert header == {"doc": "new", "title": "t"}
    assert [(b.id, b.data) for b in buffers] == [("a", b"abc"), ("b", b"")]
