// The bokehsite bundle, as bokehsite/wire.py writes and reads it:
//   "BKS1" | header length (u32, big-endian) | header (UTF-8 JSON) | buffer 0 | buffer 1 | ...
// The header's "buffers" lists [id, byteLength] for each buffer in the order their bytes follow.
// Arrays are never JSON lists or base64; they come out as ArrayBuffers that BokehJS reads as
// typed arrays.
(function () {
  "use strict";

  const MAGIC = "BKS1";
  const CONTENT_TYPE = "application/vnd.bokehsite.bundle";

  // -> {header, buffers: Map<id, ArrayBuffer>}
  function unpack(data) {
    const view = new DataView(data);
    const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== MAGIC) throw new Error("not a bokehsite bundle");
    const headLength = view.getUint32(4, false);
    let offset = 8 + headLength;
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 8, headLength)));
    const buffers = new Map();
    for (const [id, length] of header.buffers || []) {
      buffers.set(id, data.slice(offset, offset + length));
      offset += length;
    }
    delete header.buffers;
    return {header, buffers};
  }

  // header: a JSON-able object; buffers: Map<id, ArrayBuffer> -> ArrayBuffer
  function pack(header, buffers = new Map()) {
    const index = [...buffers.entries()].map(([id, buffer]) => [id, buffer.byteLength]);
    const head = new TextEncoder().encode(JSON.stringify({...header, buffers: index}));
    const total = 8 + head.length + index.reduce((n, [, length]) => n + length, 0);
    const out = new Uint8Array(total);
    out.set([...MAGIC].map((c) => c.charCodeAt(0)), 0);
    new DataView(out.buffer).setUint32(4, head.length, false);
    out.set(head, 8);
    let offset = 8 + head.length;
    for (const buffer of buffers.values()) {
      out.set(new Uint8Array(buffer), offset);
      offset += buffer.byteLength;
    }
    return out.buffer;
  }

  window.bokehsiteWire = {MAGIC, CONTENT_TYPE, pack, unpack};
})();
