// The changes this page receives, applied as bokehsite/client/inbox.py applies a script's: in
// version order.
//
// Each "patches" and "snapshot" message goes to receive(), which notices a gap (the page then
// asks the server again from what it has) and queues the rest. next() and apply() take them in
// order: changes that are the page's own echo settle its Outbox; everyone else's are applied
// with BokehJS's apply_json_patch; a snapshot replaces the document (replaceContent, which draws
// it). report() says when to tell the server what has been applied (flow control).
(function () {
  "use strict";

  const protocol = window.bokehsiteProtocol;

  class Inbox {
    // ``doc`` is at ``version``; ``outbox`` holds the changes the page sent;
    // ``replaceContent(docJson, buffers)`` resolves to the document a snapshot holds, drawn.
    constructor(doc, version, outbox, replaceContent) {
      this.doc = doc;
      this.outbox = outbox;
      this.replaceContent = replaceContent;
      this.version = version;  // what the local document is at
      this.received = version;  // the newest version received (applied or waiting)
      this.reported = version;  // the newest version the server was told is applied
      this.window = protocol.DEFAULT_WINDOW;
      this.frames = [];
    }

    // --- the connection's side ----------------------------------------------------------------

    // Queue a message as it arrives. If it does not follow on from what was received, it is
    // dropped, and the answer is the version to ask the server for again (a "sync"); else null.
    receive(message, buffers) {
      const patches = message.type === "patches";
      if (patches && message.from > this.received) return this.received;
      this.received = patches ? Math.max(this.received, message.version) : message.version;
      this.frames.push([message, buffers]);
      return null;
    }

    // --- the applying side --------------------------------------------------------------------

    // The next message to apply, as [message, buffers], or null.
    next() {
      return this.frames.shift() ?? null;
    }

    async apply(message, buffers) {
      if (message.type === "snapshot") {
        await this.replaceContentOf(message, buffers);
      } else {
        this.applyItems(message.items, buffers);
      }
    }

    // An "applied" message to send, when the server should hear what has been applied (always
    // with ``now``).
    report(now = false) {
      if (!now && this.version - this.reported < this.window / 2) return null;
      this.reported = this.version;
      return protocol.build("applied", {version: this.version});
    }

    applyItems(items, buffers) {
      for (const item of items) {
        if (item.version <= this.version) continue;  // already have it
        const [mine, batch] = this.outbox ? this.outbox.confirm(item) : [item.own === true, null];
        if (!mine) {
          // UI events (MessageSent) are for the scripts that listen, not for other browsers.
          const events = item.patch.events.filter((e) => e.kind !== "MessageSent");
          if (events.length) this.doc.apply_json_patch({...item.patch, events}, buffers);
          if (this.outbox) this.outbox.someoneElseChanged();
        } else if (batch !== null && batch.remoteSince) {
          // Someone else's change was ordered before ours while ours travelled: set our
          // properties again, so that this page ends in the server's order (ours last). Property
          // sets are idempotent; other kinds commute with others' changes to other objects.
          const sets = this.outbox.setAgain(batch);
          if (sets) this.doc.apply_json_patch(sets.patch, sets.buffers);
        }
        this.version = item.version;
      }
    }

    // The server's whole document, in place of ours.
    async replaceContentOf(message, buffers) {
      if (this.outbox) this.outbox.forgetUnconfirmed();
      this.doc = await this.replaceContent(message.doc, buffers);
      this.version = this.reported = message.version;
    }
  }

  window.bokehsiteInbox = {Inbox};
})();
