// Runs on the plot page, around the sandboxed frame (#plot-frame) that renders the document.
// Answers the frame's messages: its height (to size it), its state (mirrored on the iframe's
// data-state), and its requests for a fresh frame token, which this page fetches with the
// viewer's cookies from data-token-url. Messages from anything but that frame are ignored.
(function () {
  "use strict";

  const frame = document.getElementById("plot-frame");
  if (!frame) return;

  window.addEventListener("message", async (event) => {
    if (event.source !== frame.contentWindow || !event.data) return;
    const message = event.data;
    if (message.type === "bokehsite:frame-state") {
      frame.dataset.state = String(message.state);
    } else if (message.type === "bokehsite:frame-size") {
      const height = Number(message.height);
      if (height > 0) frame.style.height = `${Math.min(Math.ceil(height), 20000)}px`;
    } else if (message.type === "bokehsite:frame-token-request") {
      const reply = {type: "bokehsite:frame-token", id: message.id};
      try {
        const response = await fetch(frame.dataset.tokenUrl, {credentials: "same-origin", headers: {Accept: "application/json"}});
        if (response.ok) reply.token = (await response.json()).token;
        else Object.assign(reply, {error: `HTTP ${response.status}`, refused: [401, 403, 404].includes(response.status)});
      } catch (error) {
        reply.error = String(error);
      }
      // A sandboxed frame's origin is opaque ("null"), so "*" is the only target that reaches it.
      // The token only grants what the frame's own document already has: this document, this role.
      frame.contentWindow.postMessage(reply, "*");
    }
  });
})();
