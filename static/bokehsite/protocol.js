// The document websocket protocol, as bokehsite/protocol.py defines it (a test checks that the
// two agree): the path, the default window, the close codes, and every message with its fields.
//
//   bokehsiteProtocol.build("sync", {version: 3})     -> {type: "sync", version: 3}, fields checked
//   bokehsiteProtocol.encode(message, buffers)        -> a JSON string, or a bundle with buffers
//   bokehsiteProtocol.decode(data, "server")          -> {message, buffers}, or throws ProtocolError
(function () {
  "use strict";

  const wire = window.bokehsiteWire;
  const PATH = "ws/documents/{document_id}/";
  const DEFAULT_WINDOW = 64;
  const MAX_NAME_LENGTH = 100;
  const CLOSE = {UNAUTHORIZED: 4401, NOT_FOUND: 4404, TOO_MANY_CONNECTIONS: 4429, UNAVAILABLE: 4503};

  const integer = (least) => (v) => Number.isInteger(v) && v >= least;
  // No NUL and no lone UTF-16 surrogate: text the server could not store.
  const name = (v) => typeof v === "string" && v.length <= MAX_NAME_LENGTH && !v.includes("\0") && v.isWellFormed();
  const object = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const item = (v) => object(v) && integer(1)(v.version) &&
    (v.own === true || (object(v.patch) && (v.key === undefined || name(v.key))));

  const KINDS = {
    "version": integer(0),
    "version|null": (v) => v === null || integer(0)(v),
    "count": integer(1),
    "role": (v) => v === "read" || v === "write",
    "id": (v) => v === null || integer(0)(v) || name(v),
    "name": name,
    "name|null": (v) => v === null || name(v),
    "text": (v) => typeof v === "string",
    "number": (v) => typeof v === "number" && Number.isFinite(v),
    "object": object,
    "items": (v) => Array.isArray(v) && v.every(item),
  };

  const f = (kind, optional = false) => ({kind, optional});
  const MESSAGES = {
    hello: {sender: "server", fields: {version: f("version"), role: f("role"), window: f("count"), max_message: f("count", true)}},
    sync: {sender: "client", fields: {version: f("version|null")}},
    patches: {sender: "server", binary: true, fields: {from: f("version"), version: f("version"), items: f("items")}},
    snapshot: {sender: "server", binary: true, fields: {version: f("version"), doc: f("object")}},
    applied: {sender: "client", fields: {version: f("version")}},
    patch: {sender: "client", fields: {id: f("id"), patch: f("object"), key: f("name", true), base_version: f("version|null", true)}},
    ack: {sender: "server", fields: {id: f("id"), version: f("version")}},
    error: {sender: "server", fields: {code: f("name"), detail: f("text"), field: f("name|null"), id: f("id", true)}},
    role: {sender: "server", fields: {role: f("role")}},
    ping: {sender: "client", fields: {id: f("id", true)}},
    pong: {sender: "server", fields: {id: f("id", true)}},
    view: {sender: "client", fields: {id: f("id"), source: f("name"), x0: f("number"), x1: f("number"),
                                      y0: f("number", true), y1: f("number", true), width: f("count"), height: f("count")}},
    view_data: {sender: "server", binary: true, fields: {id: f("id"), source: f("name"), kind: f("name"), data: f("object"),
                                                         rows: f("version"), x0: f("number", true), x1: f("number", true),
                                                         y0: f("number", true), y1: f("number", true),
                                                         fixed: f("object", true)}},
  };

  class ProtocolError extends Error {
    constructor(detail, code = "bad_message", field = null) {
      super(detail);
      this.code = code;
      this.field = field;
    }
  }

  function check(type, message) {
    const spec = MESSAGES[type];
    for (const [field, {kind, optional}] of Object.entries(spec.fields)) {
      if (!(field in message) || message[field] === undefined) {
        if (optional) continue;
        throw new ProtocolError(`a '${type}' message needs '${field}'`, "bad_message", field);
      }
      if (!KINDS[kind](message[field])) throw new ProtocolError(`'${field}' must be of kind ${kind}`, "bad_message", field);
    }
    return message;
  }

  // A message of ``type`` with ``fields``, checked as the other side will check it.
  function build(type, fields = {}) {
    if (!(type in MESSAGES)) throw new ProtocolError(`unknown message type '${type}'`, "unknown_message", "type");
    const message = {type};
    for (const [field, value] of Object.entries(fields)) if (value !== undefined) message[field] = value;
    return check(type, message);
  }

  function encode(message, buffers = new Map()) {
    return buffers.size || MESSAGES[message.type].binary ? wire.pack(message, buffers) : JSON.stringify(message);
  }

  // The message in a websocket frame from ``sender`` ("server" or "client"), and its buffers.
  function decode(data, sender) {
    let message, buffers = new Map();
    if (data instanceof ArrayBuffer) {
      try {
        ({header: message, buffers} = wire.unpack(data));
      } catch (error) {
        throw new ProtocolError(`malformed bundle: ${error.message}`, "malformed_bundle");
      }
    } else {
      try {
        message = JSON.parse(data);
      } catch (error) {
        throw new ProtocolError(`malformed JSON: ${error.message}`, "malformed_json");
      }
    }
    if (!object(message)) throw new ProtocolError("a message must be a JSON object", "malformed_json");
    const spec = MESSAGES[message.type];
    if (!spec || spec.sender !== sender) throw new ProtocolError(`unknown message type '${message.type}'`, "unknown_message", "type");
    return {message: check(message.type, message), buffers};
  }

  // The protocol as plain data, in the shape of bokehsite.protocol.spec().
  function spec() {
    const messages = {};
    for (const [type, {sender, binary, fields}] of Object.entries(MESSAGES)) messages[type] = {sender, binary: Boolean(binary), fields};
    return {path: PATH, window: DEFAULT_WINDOW, close: CLOSE, kinds: Object.keys(KINDS).sort(), messages};
  }

  window.bokehsiteProtocol = {PATH, DEFAULT_WINDOW, CLOSE, MESSAGES, ProtocolError, build, encode, decode, spec};
})();
