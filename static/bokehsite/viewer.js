// Renders a stored bokehsite document with BokehJS and keeps it in step with the server.
//
// The document arrives as a bundle (wire.js); changes travel over the document's websocket as
// the messages of protocol.js. Arrays are never JSON lists or base64; they become ArrayBuffers
// that BokehJS reads as typed arrays.
(function () {
  "use strict";

  const {CONTENT_TYPE, unpack} = window.bokehsiteWire;
  const protocol = window.bokehsiteProtocol;
  const {Connection, State} = window.bokehsiteConnection;
  const {Inbox} = window.bokehsiteInbox;
  const {Outbox} = window.bokehsiteOutbox;

  // In the sandboxed plot frame the document loads with the frame's signed token, never with
  // cookies (the frame has none anyway: its origin is opaque). Without a token, as before.
  function contentRequest(url, frameToken) {
    if (!frameToken) return [url, {headers: {Accept: CONTENT_TYPE}, credentials: "same-origin"}];
    const target = new URL(url, window.location.href);
    target.searchParams.set("frame_token", frameToken);
    return [target.href, {headers: {Accept: CONTENT_TYPE}, credentials: "omit"}];
  }

  async function fetchBundle(url, frameToken, early = null) {
    let response = await (early || fetch(...contentRequest(url, frameToken)));
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
    // A document with a page of its own (an app's template) placed some roots: each is drawn
    // there, the others here.
    const placed = new Map(Array.from(document.querySelectorAll("[data-root-id]"), (el) => [el.dataset.rootId, el]));
    for (const el of placed.values()) el.replaceChildren();
    await Bokeh.embed.add_document_standalone(doc, element, doc.roots().map((root) => placed.get(root.id) ?? null));
    return doc;
  }

  async function render(element) {
    // The frame's page asked for the content as it began to load (bokehsiteEarlyContent).
    const early = window.bokehsiteEarlyContent || null;
    window.bokehsiteEarlyContent = null;
    const {header, buffers, version} = await fetchBundle(element.dataset.docUrl, element.dataset.frameToken, early);
    const doc = await embed(element, header.doc, buffers);
    element.dataset.version = String(version);
    element.dataset.state = "rendered";
    return {doc, version};
  }

  // Changes BokehJS reports within this long after the user's last input are the user's; others
  // (automatic range fits, layout sizes, "document_ready") are view state and stay local.
  const USER_INPUT_WINDOW_MS = 1000;
  const INPUT_EVENTS = ["pointerdown", "pointermove", "pointerup", "wheel", "keydown", "input", "change", "touchstart"];
  // What has been applied is told the server this soon, when the inbox does not ask for it at once.
  const REPORT_AFTER_MS = 50;
  const STATUS = {[State.CONNECTING]: ["connecting", "connecting…"], [State.WAITING]: ["reconnecting", "reconnecting…"]};

  // Keeps a rendered document in step with the server over the document's websocket, both ways,
  // from the parts a script's sync (bokehsite/client/sync.py) is made of: a Connection, an Inbox
  // for the server's changes and an Outbox for the user's (with the write role). This class shows
  // the connection's state, draws what a snapshot holds, and tells the user's changes from view state.
  class DocumentSync {
    constructor(element, doc, version, status) {
      this.element = element;
      this.status = status;
      this.role = null;
      this.lastInput = -Infinity;
      this.reportTimer = null;
      this.applying = Promise.resolve();  // frames are applied one after another
      this.outbox = new Outbox();
      this.inbox = new Inbox(doc, version, this.outbox, (docJson, buffers) => this.replaceContent(docJson, buffers));
      this.views = new window.bokehsiteViews.BackedViews((type, fields) => this.connection.send(protocol.build(type, fields)), element);
      // The whole frame: a document with a page of its own draws roots outside the element.
      for (const type of INPUT_EVENTS) {
        document.addEventListener(type, (event) => {
          if (type !== "pointermove" || event.buttons) this.lastInput = performance.now();
        }, {capture: true, passive: true});
      }
      this.watch(doc);
      this.connection = new Connection(element.dataset.wsPath, {
        frame: window.bokehsiteFrame || null,
        onOpen: (hello) => this.opened(hello),
        onMessage: (message, buffers) => this.received(message, buffers),
        onState: (state) => { if (STATUS[state]) this.setStatus(...STATUS[state]); },
        onClosed: (detail, code) => this.stop(
          code === protocol.CLOSE.TOO_MANY_CONNECTIONS ? "too many connections" : "no access", detail),
      });
      this.connection.run();
    }

    get doc() {
      return this.inbox.doc;
    }

    get version() {
      return this.inbox.version;
    }

    watch(doc) {
      this.views.attach(doc);
      doc.on_change((event) => {
        this.views.changed(event);
        this.local(event);
      }, true);
    }

    // A snapshot's document, drawn in place of the one shown.
    async replaceContent(docJson, buffers) {
      this.doc.clear();
      const doc = await embed(this.element, docJson, buffers);
      this.watch(doc);
      return doc;
    }

    setStatus(state, text) {
      this.element.dataset.live = state;
      if (this.status) {
        this.status.dataset.status = state;
        this.status.textContent = text;
      }
    }

    // No more connecting: say why, beside the plot, which stays as it was.
    stop(state, detail) {
      this.role = "read";
      this.outbox.forgetAll();
      this.setStatus("closed", state);
      if (this.status) this.status.title = detail;
      this.element.dataset.closedReason = detail;
    }

    // What this connection may do changed while it was open (access was changed).
    setRole(role) {
      this.role = role;
      if (role !== "write") this.outbox.forgetAll();  // unsent and unconfirmed changes will not be stored
      this.element.dataset.role = role;
      this.setStatus("live", role === "write" ? "live" : "live · read-only");
    }

    // A new connection: resume from what was received, resend what is unconfirmed.
    opened(hello) {
      this.inbox.window = hello.window;
      this.setRole(hello.role);
      this.connection.send(protocol.build("sync", {version: this.inbox.received}));
      for (const batch of this.outbox.resend()) this.connection.sendFrame(batch.frame());  // the server drops repeats by key
      this.views.requestAll();
    }

    // --- the user's changes -------------------------------------------------------------------

    local(event) {
      if (this.role !== "write") return;  // read-only: interactions stay in this browser
      const events = (event.events ?? [event]).filter((e) => e.sync);
      if (events.length === 0 || performance.now() - this.lastInput > USER_INPUT_WINDOW_MS) return;
      // What one input changes (a slider's value and value_throttled, say) leaves as one patch.
      if (this.outbox.queued === 0) queueMicrotask(() => this.sendChanges());
      this.outbox.put(events);
    }

    sendChanges() {
      const batch = this.outbox.take(this.doc);
      if (batch) this.connection.sendFrame(batch.frame());  // resent after the reconnect if closed
    }

    // --- the server's messages ----------------------------------------------------------------

    received(message, buffers) {
      switch (message.type) {
        case "view_data":
          this.views.receive(message, buffers);
          break;
        case "patches":
        case "snapshot": {
          const gap = this.inbox.receive(message, buffers);
          if (gap !== null) {  // ask again from what we have
            this.connection.send(protocol.build("sync", {version: gap}));
          } else {
            this.applying = this.applying.then(() => this.applyNext()).catch((error) => console.error(error));
          }
          break;
        }
        case "role":
          this.setRole(message.role);
          break;
        case "error":
          console.warn(`bokehsite: ${message.code}: ${message.detail}`);
          if (this.outbox.refused(message.id)) {  // not stored: go back to what the server has
            this.connection.send(protocol.build("sync", {version: null}));
          }
          break;
      }
    }

    async applyNext() {
      const [message, buffers] = this.inbox.next();
      await this.inbox.apply(message, buffers);
      if (message.type === "snapshot") this.views.requestAll();
      this.element.dataset.version = String(this.inbox.version);
      // Tell the server what we have applied, so that it keeps sending (flow control).
      const report = this.inbox.report();
      if (report) {
        this.sendReport(report);
      } else if (this.reportTimer === null) {
        this.reportTimer = setTimeout(() => this.sendReport(this.inbox.report(true)), REPORT_AFTER_MS);
      }
    }

    sendReport(report) {
      clearTimeout(this.reportTimer);
      this.reportTimer = null;
      this.connection.send(report);
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
