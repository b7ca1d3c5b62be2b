// Runs in an app's page: attaches the session's sandboxed frame (bokehsiteFrameHost), and when
// the session's document goes away (the session ended: its Python stopped, or it was unused)
// says so and offers a new session.
(function () {
  "use strict";

  const frame = document.getElementById("app-frame");
  const ended = document.getElementById("session-ended");
  window.bokehsiteFrameHost.attach(frame, {
    tokenUrl: frame.dataset.tokenUrl, credentials: "same-origin",
    onState(state) {
      if (state === "closed") ended.hidden = false;
    },
  });
})();
