// Runs in an app's page: attaches the session's sandboxed frame (bokehsiteFrameHost), and when
// the session's document goes away (the session ended: its Python stopped, it was unused, or a
// callback ran too long) says so, with the server's reason, and offers a new session.
(function () {
  "use strict";

  const frame = document.getElementById("app-frame");
  const ended = document.getElementById("session-ended");
  const reason = document.getElementById("session-ended-reason");
  window.bokehsiteFrameHost.attach(frame, {
    tokenUrl: frame.dataset.tokenUrl, credentials: "same-origin",
    onState(state, why) {
      if (state !== "closed") return;
      if (why) reason.textContent = `: ${why}`;
      ended.hidden = false;
    },
  });
})();
