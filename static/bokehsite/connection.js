// One document's websocket, kept as bokehsite/client/connection.py keeps a script's: connect,
// greet, reconnect with backoff.
//
// Each time it connects it waits for the server's "hello", calls onOpen(hello), then
// onMessage(message, buffers) for every other message, each parsed and checked by protocol.js.
// When the network drops it, it connects again after a pause that doubles with each failure (up
// to 30 s, with jitter, so that a restarted server is not stampeded), and that starts short
// again at the next hello. When the server closes it for good (the document is gone, access to
// it was taken away, or a connection limit is reached) it calls onClosed(detail, code) instead.
// onState(state) hears each change of State. In the sandboxed frame the socket is admitted by the frame's signed token, never by
// cookies. Sends never throw: what a closed socket misses is sent again after the reconnect.
(function () {
  "use strict";

  const protocol = window.bokehsiteProtocol;

  const State = Object.freeze({
    CONNECTING: "connecting",
    OPEN: "open",  // the server said hello
    WAITING: "waiting",  // to reconnect
    CLOSED: "closed",
  });
  const FIRST_DELAY_MS = 500;
  const MAX_DELAY_MS = 30000;
  const NO_ACCESS = "You no longer have access to this document.";

  class Connection {
    // ``path``: the document's websocket path; ``frame``: window.bokehsiteFrame in the frame.
    constructor(path, {frame = null, onOpen, onMessage, onState = () => {}, onClosed = () => {}}) {
      this.path = path;
      this.frame = frame;
      this.onOpen = onOpen;
      this.onMessage = onMessage;
      this.onState = onState;
      this.onClosed = onClosed;
      this.state = State.CONNECTING;
      this.ws = null;
      this.delay = FIRST_DELAY_MS;
      this.refusal = null;  // why the server is about to close, if it said
    }

    get isOpen() {
      return this.state === State.OPEN;
    }

    // Stay connected until close().
    run() {
      return this.connect(false);
    }

    setState(state) {
      this.state = state;
      this.onState(state);
    }

    async connect(reconnecting) {
      const url = new URL(this.path, location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      if (this.frame) {
        // Tokens are short-lived, so a reconnect asks the page around the frame for a fresh one.
        try {
          url.searchParams.set("frame_token", reconnecting ? await this.frame.refreshToken() : this.frame.token());
        } catch (error) {
          if (error.refused) {  // the page may no longer show this document to this viewer
            this.close(error.detail || NO_ACCESS);
            return;
          }
          console.warn(`bokehsite: ${error.message}`);
          url.searchParams.set("frame_token", this.frame.token());
        }
      }
      if (this.state === State.CLOSED) return;
      this.setState(State.CONNECTING);
      const ws = this.ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onmessage = (event) => this.received(event.data).catch((error) => console.error(error));
      ws.onclose = (event) => {
        if (this.ws !== ws || this.state === State.CLOSED) return;
        const refusal = this.refusal;
        this.refusal = null;
        // Refused for good: the document is gone or hidden from us, or our credentials are, or a
        // connection limit is reached (as the Python client, the page says which and stops). A
        // frame asks its page for a fresh token first (the page knows whether the viewer still may look).
        const final = event.code === protocol.CLOSE.NOT_FOUND || event.code === protocol.CLOSE.TOO_MANY_CONNECTIONS;
        if (final || (event.code === protocol.CLOSE.UNAUTHORIZED && !this.frame)) {
          this.close(refusal ? refusal.detail : NO_ACCESS, event.code);
          return;
        }
        this.setState(State.WAITING);
        setTimeout(() => this.connect(true), this.delay * (0.5 + Math.random()));
        this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
      };
    }

    async received(data) {
      const {message, buffers} = protocol.decode(data, "server");
      if (message.type === "hello") {
        this.delay = FIRST_DELAY_MS;
        this.setState(State.OPEN);
        await this.onOpen(message);
        return;
      }
      if (message.type === "error" && (message.id === undefined || message.id === null)) this.refusal = message;  // the close follows
      await this.onMessage(message, buffers);
    }

    // Send a message (a checked one, from protocol.build) if the socket is open.
    send(message, buffers = new Map()) {
      this.sendFrame(protocol.encode(message, buffers));
    }

    sendFrame(frame) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    }

    // Stop: no more connecting; ``detail`` says why, and ``code`` is the server's close code if it closed.
    close(detail, code = null) {
      this.setState(State.CLOSED);
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.close();
      this.onClosed(detail, code);
    }

    // Break the connection as a network failure would (it reconnects); for tests.
    drop() {
      if (this.ws) this.ws.close();
    }
  }

  window.bokehsiteConnection = {Connection, State};
})();
