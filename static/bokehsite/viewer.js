// Renders a stored bokehsite document with BokehJS and keeps it in step with the server.
//
// The document arrives as a bundle (wire.js); changes travel over the document's websocket as
// the messages of protocol.js. Arrays are never JSON lists or base64; they become ArrayBuffers
// that BokehJS reads as typed arrays.
(function () {
  "use strict";

  const {CONTENT_TYPE, unpack} = window.bokehsiteWire;
  const protocol = window.bokehsiteProtocol;

  // In the sandboxed plot frame the document loads with the frame's signed token, never with
  // cookies (the frame has none anyway: its origin is opaque). Without a token, as before.
  function contentRequest(url, frameToken) {
    if (!frameToken) return [url, {headers: {Accept: CONTENT_TYPE}, credentials: "same-origin"}];
    const target = new URL(url, window.location.href);
    target.searchParams.set("frame_token", frameToken);
    return [target.href, {headers: {Accept: CONTENT_TYPE}, credentials: "omit"}];
  }

  async function fetchBundle(url, frameToken) {
    let response = await fetch(...contentRequest(url, frameToken));
    if (response.status === 401 && frameToken && window.bokehsiteFrame) {
      // The token expired (a frame reloaded long after its page): ask the page for a fresh one.
      response = await fetch(...contentRequest(url, await window.bokehsiteFrame.refreshToken()));
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(`could not load the document (HTTP ${response.status}): ${detail}`);
    }
    const {header, buffers} = unpack(await response.arrayBuffer());
    return {header, buffers, version: Number(response.headers.get("X-Document-Version"))};
  }

  async function embed(element, docJson, buffers) {
    const {Document} = Bokeh.require("document");
    const doc = Document.from_json(docJson, undefined, buffers);
    element.replaceChildren();
    await Bokeh.embed.add_document_standalone(doc, element);
    return doc;
  }

  async function render(element) {
    const {header, buffers, version} = await fetchBundle(element.dataset.docUrl, element.dataset.frameToken);
    const doc = await embed(element, header.doc, buffers);
    element.dataset.version = String(version);
    element.dataset.state = "rendered";
    return {doc, version};
  }

  // Changes BokehJS reports within this long after the user's last input are the user's; others
  // (automatic range fits, layout sizes, "document_ready") are view state and stay local.
  const USER_INPUT_WINDOW_MS = 1000;
  const INPUT_EVENTS = ["pointerdown", "pointermove", "pointerup", "wheel", "keydown", "input", "change", "touchstart"];

  // Bokeh's PATCH-DOC content with BokehJS's binary Buffers replaced by {id} references.
  function withReferences(patch) {
    const {Buffer} = Bokeh.require("core/serialization");
    const buffers = new Map();
    const json = JSON.parse(JSON.stringify(patch, (_, value) => {
      if (value instanceof Buffer) {
        const id = String(buffers.size);
        buffers.set(id, value.buffer);
        return {id};
      }
      return value;
    }));
    return {patch: json, buffers};
  }

  // Keeps a rendered document in step with the server over the document's websocket, both ways.
  // Messages (protocol.js): "hello" (version, role), "patches" (from A to B; items are Bokeh
  // PATCH-DOC contents, or {own: true} for this connection's changes), "snapshot" (a whole new
  // document), "ack", "error". With the write role, the user's changes go to the server as patches.
  class DocumentSync {
    constructor(element, doc, version, status) {
      this.element = element;
      this.version = version;
      this.status = status;
      this.window = protocol.DEFAULT_WINDOW;
      this.reported = version;
      this.delay = 500;
      this.ackTimer = null;
      this.role = null;
      this.clientId = Math.random().toString(36).slice(2);
      this.nextId = 0;
      this.pending = [];  // changes sent but not yet seen in the stream, oldest first
      this.outbox = [];  // the user's changes of this task, sent together
      this.lastInput = -Infinity;
      this.views = new window.bokehsiteViews.BackedViews((type, fields) => this.send(type, fields), element);
      for (const type of INPUT_EVENTS) {
        element.addEventListener(type, (event) => {
          if (type !== "pointermove" || event.buttons) this.lastInput = performance.now();
        }, {capture: true, passive: true});
      }
      this.watch(doc);
      this.connect();
    }

    watch(doc) {
      this.doc = doc;
      this.views.attach(doc);
      doc.on_change((event) => {
        this.views.changed(event);
        this.local(event);
      }, true);
    }

    setStatus(state, text) {
      this.element.dataset.live = state;
      if (this.status) {
        this.status.dataset.status = state;
        this.status.textContent = text;
      }
    }

    async connect(reconnecting = false) {
      const url = new URL(this.element.dataset.wsPath, location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const frame = window.bokehsiteFrame;
      if (frame) {
        // In the sandbox the socket is admitted by the frame's signed token, never by cookies.
        // Tokens are short-lived, so a reconnect asks the page around the frame for a fresh one.
        try {
          url.searchParams.set("frame_token", reconnecting ? await frame.refreshToken() : frame.token());
        } catch (error) {
          if (error.refused) {  // the page may no longer show this document to this viewer
            this.stop("no access", error.detail || "You no longer have access to this document.");
            return;
          }
          console.warn(`bokehsite: ${error.message}`);
          url.searchParams.set("frame_token", frame.token());
        }
      }
      this.setStatus("connecting", "connecting…");
      const ws = this.ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onmessage = (event) => this.receive(event.data).catch((error) => console.error(error));
      ws.onclose = (event) => {
        if (this.ws !== ws || this.stopped) return;
        const refusal = this.refusal;
        this.refusal = null;
        // Refused for good: the document is gone or hidden from us, or our credentials are. A frame
        // asks its page for a fresh token first (the page knows whether the viewer still may look).
        if (event.code === protocol.CLOSE.NOT_FOUND || (event.code === protocol.CLOSE.UNAUTHORIZED && !frame)) {
          this.stop("no access", refusal ? refusal.detail : "You no longer have access to this document.");
          return;
        }
        this.setStatus("reconnecting", "reconnecting…");
        // Exponential backoff with jitter, so that a restarted server is not stampeded.
        setTimeout(() => this.connect(true), this.delay * (0.5 + Math.random()));
        this.delay = Math.min(this.delay * 2, 30000);
      };
    }

    // No more connecting: say why, beside the plot, which stays as it was.
    stop(state, detail) {
      this.stopped = true;
      this.role = "read";
      this.pending = [];
      this.outbox = [];
      this.setStatus("closed", state);
      if (this.status) this.status.title = detail;
      this.element.dataset.closedReason = detail;
    }

    // What this connection may do changed while it was open (access was changed).
    setRole(role) {
      this.role = role;
      if (role !== "write") {  // unsent and unconfirmed changes will not be stored
        this.pending = [];
        this.outbox = [];
      }
      this.element.dataset.role = role;
      this.setStatus("live", role === "write" ? "live" : "live · read-only");
    }

    send(type, fields) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(protocol.encode(protocol.build(type, fields)));
    }

    // --- the user's changes -------------------------------------------------------------------

    local(event) {
      if (this.role !== "write") return;  // read-only: interactions stay in this browser
      const events = (event.events ?? [event]).filter((e) => e.sync);
      if (events.length === 0 || performance.now() - this.lastInput > USER_INPUT_WINDOW_MS) return;
      // What one input changes (a slider's value and value_throttled, say) leaves as one patch.
      if (this.outbox.length === 0) queueMicrotask(() => this.sendOutbox());
      this.outbox.push(...events);
    }

    sendOutbox() {
      const events = this.outbox.splice(0);
      const {patch, buffers} = withReferences(this.doc.create_json_patch(events));
      const change = {key: `${this.clientId}:${++this.nextId}`, patch, buffers, remoteSince: false};
      this.pending.push(change);
      this.sendChange(change);
    }

    sendChange({key, patch, buffers}) {
      if (this.ws.readyState !== WebSocket.OPEN) return;  // resent after the reconnect
      this.ws.send(protocol.encode(protocol.build("patch", {id: key, key, patch}), buffers));
    }

    // Our change came back in the stream. If someone else's change was ordered before it while it
    // was on its way, set our properties again, so this browser ends in the server's order (ours
    // last). Property sets are idempotent; other kinds commute with changes to other objects.
    settle(index) {
      const [change] = this.pending.splice(index, 1);
      const sets = change.patch.events.filter((e) => e.kind === "ModelChanged");
      if (change.remoteSince && sets.length) this.doc.apply_json_patch({...change.patch, events: sets}, change.buffers);
    }

    // --- the server's frames ------------------------------------------------------------------

    async receive(data) {
      const {message: header, buffers} = protocol.decode(data, "server");
      switch (header.type) {
        case "hello":
          this.window = header.window;
          this.delay = 500;
          this.setRole(header.role);
          this.send("sync", {version: this.version});
          for (const change of this.pending) this.sendChange(change);  // the server drops repeats by key
          this.views.requestAll();
          break;
        case "view_data":
          this.views.receive(header, buffers);
          break;
        case "patches":
          this.applyPatches(header, buffers);
          break;
        case "snapshot":
          this.pending = [];
          if (this.doc) this.doc.clear();
          this.watch(await embed(this.element, header.doc, buffers));
          this.moveTo(header.version);
          this.views.requestAll();
          break;
        case "role":
          this.setRole(header.role);
          break;
        case "error": {
          console.warn(`bokehsite: ${header.code}: ${header.detail}`);
          if (header.id === undefined || header.id === null) this.refusal = header;  // the close follows
          const refused = this.pending.findIndex((change) => change.key === header.id);
          if (refused >= 0) {  // not stored: go back to what the server has
            this.pending.splice(refused, 1);
            this.send("sync", {version: null});
          }
          break;
        }
      }
    }

    applyPatches(header, buffers) {
      for (const item of header.items) {
        if (item.version <= this.version) continue;  // already have it
        if (item.version !== this.version + 1) {  // a gap: ask again from what we have
          this.send("sync", {version: this.version});
          return;
        }
        const mine = item.own ? 0 : this.pending.findIndex((change) => change.key === item.key);
        if (item.own || mine >= 0) {
          if (this.pending.length) this.settle(Math.max(mine, 0));
        } else {
          // UI events (MessageSent) are for the scripts that listen, not for other browsers.
          const events = item.patch.events.filter((e) => e.kind !== "MessageSent");
          if (events.length) this.doc.apply_json_patch({...item.patch, events}, buffers);
          for (const change of this.pending) change.remoteSince = true;
        }
        this.version = item.version;
      }
      this.moveTo(header.version);
    }

    moveTo(version) {
      this.version = version;
      this.element.dataset.version = String(version);
      // Tell the server what we have applied, so that it keeps sending (flow control).
      if (version - this.reported >= this.window / 2) {
        this.reportApplied();
      } else if (this.ackTimer === null) {
        this.ackTimer = setTimeout(() => this.reportApplied(), 50);
      }
    }

    reportApplied() {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
      this.reported = this.version;
      this.send("applied", {version: this.version});
    }
  }

  window.bokehsite = {fetchBundle, render, embed, DocumentSync};

  const element = document.getElementById("plot");
  if (element) {
    // history.js waits for the first version to be drawn.
    window.bokehsite.loaded = render(element);
    window.bokehsite.loaded.then(({doc, version}) => {
      if (element.dataset.wsPath) window.bokehsite.sync = new DocumentSync(element, doc, version, document.getElementById("live-status"));
    }).catch((error) => {
      element.dataset.state = "error";
      element.replaceChildren(Object.assign(document.createElement("p"), {className: "status error", textContent: error.message}));
      console.error(error);
    });
  }
})();
