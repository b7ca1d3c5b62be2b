"""Hypothesis strategies for hostile input: JSON of every kind, values no database stores, valid
messages and documents with fields mutated, bundles and bytes that are not."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bokehsite import wire

# Each fuzz test runs in seconds, the same examples every run (a failure reproduces), and writes
# no example database into the checkout.
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# Values that broke something once: huge integers, floats JSON cannot hold, text no database
# stores, types where Bokeh expects others, deep nesting.
AWKWARD = st.sampled_from([
    10**400, -(2**70), 2**64 + 1, 1e308, -0.0, float("nan"), float("inf"), "\x00", "a\x00b", "\ud800", "x" * 5000,
    "", [], {}, [[]], {"id": {"an": "object"}}, {"type": ["bytes"]}, {"type": "bytes", "data": "bm90IGd6aXA="},
    {"type": "bytes", "data": {"id": 7}}, {"type": "object", "name": {"a": 1}}, {"type": "object", "name": "NoSuchModel", "id": "n"},
    {"type": "ndarray", "array": ["a"], "dtype": "U100000", "shape": [1], "order": "little"},
    {"type": "ndarray", "array": {"type": "bytes", "data": "AAAA"}, "dtype": "float64", "shape": [9], "order": "big"},
    {"type": "number", "value": "nope"}, {"type": "map", "entries": [[[1], 2]]}, {"type": "set", "entries": [{}]},
    {"type": "slice", "start": 1}, {"type": "typed_array", "array": {"type": "bytes", "data": "AAAA"}, "dtype": "int64"},
    json.loads("[" * 199 + "]" * 199), json.loads("[" * 205 + "]" * 205),
]).map(copy.deepcopy)  # a fresh copy each time: mutations change what they are given
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
JSON = st.recursive(SCALARS | AWKWARD, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


class Shown(dict):
    """``send_to``/request arguments that a failing example shows shortened (some are megabytes)."""

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if len(text) <= 400 else f"{text[:300]}... ({len(text)} characters) ...{text[-60:]}"


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a member or item inside ``node`` (without recursing deeply: fuzzed data is small)."""
    found = []
    stack = [(node, prefix)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                found.append(path + (key,))
                stack.append((value, path + (key,)))
        elif isinstance(item, list):
            for i, value in enumerate(item):
                found.append(path + (i,))
                stack.append((value, path + (i,)))
    return found


@st.composite
def mutated(draw, value: Any, times: int = 3) -> Any:
    """``value`` (JSON) with up to ``times`` of its members or items replaced, removed or added to."""
    value = json.loads(json.dumps(value))
    for _ in range(draw(st.integers(1, times))):
        where = paths(value)
        if not where:
            return draw(JSON)
        path = draw(st.sampled_from(where))
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add", "wrap"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON)
        elif action == "remove":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON)
        else:
            parent.append(draw(JSON))
    return value


def json_text(value: Any) -> str:
    """JSON text as a hostile client writes it: NaN and Infinity as bare words, escapes for NUL and
    unpaired surrogates."""
    return json.dumps(value, allow_nan=True)


def bundle(header: Any, buffers: list[tuple[str, bytes]] = (), *, index: Any = None) -> bytes:
    """A bundle of ``header`` (any JSON) and ``buffers``; ``index`` replaces the buffer index a
    header object gets."""
    if isinstance(header, dict):
        header = {**header, "buffers": [[i, len(b)] for i, b in buffers] if index is None else index}
    head = json_text(header).encode("utf-8", "surrogatepass")
    return wire._HEAD.pack(wire.MAGIC, len(head)) + head + b"".join(b for _, b in buffers)


GARBAGE_BYTES = st.binary(min_size=1, max_size=64) | st.binary(max_size=16).map(lambda b: wire.MAGIC + b)
DEEP_TEXT = st.sampled_from(["[" * 100_000, "{\"a\":" * 5000 + "1" + "}" * 5000, "[" * 220 + "]" * 220])
