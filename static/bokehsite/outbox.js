// The changes this page sends, kept as bokehsite/client/outbox.py keeps a script's: queued in
// order, sent in keyed batches, kept until confirmed.
//
// The change events of one user input are queued (put) as BokehJS reports them; take() makes
// what is queued one batch, a "patch" message with a key. A batch stays unconfirmed until its
// change comes back in the stream of changes (confirm). After a reconnect every unconfirmed
// batch is sent again (resend): the server recognises the key and does not apply it twice. The
// page follows the stream, so it needs no acknowledgements and sends each batch at once.
(function () {
  "use strict";

  const protocol = window.bokehsiteProtocol;

  // Bokeh's PATCH-DOC content of ``events``, with BokehJS's binary Buffers replaced by {id}
  // references to ``buffers``.
  function serialize(doc, events) {
    const {Buffer} = Bokeh.require("core/serialization");
    const buffers = new Map();
    const patch = JSON.parse(JSON.stringify(doc.create_json_patch(events), (_, value) => {
      if (value instanceof Buffer) {
        const id = String(buffers.size);
        buffers.set(id, value.buffer);
        return {id};
      }
      return value;
    }));
    return {patch, buffers};
  }

  const target = (id, attr) => `${id} ${attr}`;

  // Changes sent together as one "patch" message, named by ``key``.
  class Batch {
    constructor(key, patch, buffers) {
      this.key = key;
      this.patch = patch;
      this.buffers = buffers;
      this.remoteSince = false;  // someone else's change was applied while this one travelled
    }

    frame() {
      return protocol.encode(protocol.build("patch", {id: this.key, key: this.key, patch: this.patch}), this.buffers);
    }

    // This batch's property sets (ModelChanged) but those ``skip`` holds ("model id attribute"),
    // as a patch to apply again, if any are left.
    propertySets(skip = new Set()) {
      const sets = this.patch.events.filter((e) => e.kind === "ModelChanged" && !skip.has(target(e.model.id, e.attr)));
      return sets.length ? {patch: {...this.patch, events: sets}, buffers: this.buffers} : null;
    }
  }

  class Outbox {
    // ``client`` names this page's batches: keys are "client:1", "client:2", ...
    constructor(client = Math.random().toString(36).slice(2)) {
      this.client = client;
      this.seq = 0;
      this.pending = [];  // change events queued, not sent
      this.unconfirmed = [];  // batches sent, not yet seen back in the stream, oldest first
    }

    get queued() {
      return this.pending.length;
    }

    // Queue change events BokehJS reported.
    put(events) {
      this.pending.push(...events);
    }

    // The next batch to send, of ``doc``'s changes: everything queued, as one patch.
    take(doc) {
      if (this.pending.length === 0) return null;
      const {patch, buffers} = serialize(doc, this.pending.splice(0));
      const batch = new Batch(`${this.client}:${++this.seq}`, patch, buffers);
      this.unconfirmed.push(batch);
      return batch;
    }

    // After a reconnect: every unconfirmed batch, to send again before anything new.
    resend() {
      return [...this.unconfirmed];
    }

    // The server refused the message ``id``; whether it was one of our batches (nothing of it
    // was stored).
    refused(id) {
      const index = this.unconfirmed.findIndex((batch) => batch.key === id);
      if (index >= 0) this.unconfirmed.splice(index, 1);
      return index >= 0;
    }

    // Whether a change in the stream is one of ours, and if so the batch it confirms (that one
    // and any older are done with): [mine, batch or null].
    confirm(item) {
      const own = item.own === true;
      if (!(own || this.unconfirmed.some((batch) => batch.key === item.key))) return [false, null];
      while (this.unconfirmed.length) {
        const batch = this.unconfirmed.shift();
        if (own || batch.key === item.key) return [true, batch];
      }
      return [true, null];
    }

    // What to set again when ``batch`` comes back after someone else's change: its property
    // sets, but those a newer change of ours (unconfirmed or queued) sets too, whose value the
    // document holds already and the server orders last.
    setAgain(batch) {
      const newer = new Set();
      for (const other of this.unconfirmed) {
        for (const e of other.patch.events) if (e.kind === "ModelChanged") newer.add(target(e.model.id, e.attr));
      }
      for (const e of this.pending) if (e.kind === "ModelChanged") newer.add(target(e.model.id, e.attr));
      return batch.propertySets(newer);
    }

    // A change of someone else's was applied while ours travel (see Inbox).
    someoneElseChanged() {
      for (const batch of this.unconfirmed) batch.remoteSince = true;
    }

    // A snapshot replaced the document: what travelled before is in it, or never will be.
    forgetUnconfirmed() {
      this.unconfirmed = [];
    }

    // This page may no longer write: nothing queued or unconfirmed will be stored.
    forgetAll() {
      this.pending = [];
      this.unconfirmed = [];
    }
  }

  window.bokehsiteOutbox = {Outbox, Batch, serialize};
})();
