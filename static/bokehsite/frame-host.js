// Runs in the page around a sandboxed plot frame: this site's plot page (#plot-frame, attached
// at once) or, through autoload.js, another site's page. Answers the frame's messages: its size
// (to size it), its state (mirrored on the iframe's data-state), and its requests for a fresh
// frame token, fetched from the token URL. Messages from anything but that frame are ignored.
//
// window.bokehsiteFrameHost.attach(frame, {tokenUrl, credentials, fitWidth, onState})
//   credentials  "same-origin" on this site's pages (the viewer's cookies), "omit" for embeds
//   fitWidth     also take the width of a plot of fixed size
//   onState      called with (state, reason) as the frame's plot loads, renders or stops
(function () {
  "use strict";

  const LARGEST = 20000;

  function attach(frame, options) {
    window.addEventListener("message", async (event) => {
      if (event.source !== frame.contentWindow || !event.data) return;
      const message = event.data;
      if (message.type === "bokehsite:frame-state") {
        frame.dataset.state = String(message.state);
        if (options.onState) options.onState(String(message.state), message.reason ? String(message.reason) : null);
      } else if (message.type === "bokehsite:frame-size") {
        const height = Number(message.height);
        if (height > 0) frame.style.height = `${Math.min(Math.ceil(height), LARGEST)}px`;
        const width = Number(message.width);
        if (options.fitWidth && width > 0) frame.style.width = `${Math.min(Math.ceil(width), LARGEST)}px`;
      } else if (message.type === "bokehsite:frame-token-request") {
        const reply = {type: "bokehsite:frame-token", id: message.id};
        try {
          const response = await fetch(options.tokenUrl, {credentials: options.credentials || "same-origin",
                                                          headers: {Accept: "application/json"}});
          if (response.ok) {
            reply.token = (await response.json()).token;
          } else {
            Object.assign(reply, {error: `HTTP ${response.status}`, refused: [401, 403, 404].includes(response.status)});
            try { reply.detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
          }
        } catch (error) {
          reply.error = String(error);
        }
        // A sandboxed frame's origin is opaque ("null"), so "*" is the only target that reaches it.
        // The token only grants what the frame's own document already has: this document, this role.
        frame.contentWindow.postMessage(reply, "*");
      }
    });
  }

  window.bokehsiteFrameHost = {attach};

  const frame = document.getElementById("plot-frame");
  if (frame) attach(frame, {tokenUrl: frame.dataset.tokenUrl, credentials: "same-origin"});
})();
