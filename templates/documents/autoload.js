// bokehsite: shows one plot (or an app's session) in this page, live, after the script tag that
// loaded this, or after the element config.element names (Bokeh's server_document fetches this
// and runs it from a script of its own at the end of the page). The plot's own code runs in a
// sandboxed frame with an opaque origin: it cannot reach this page, its cookies or its storage,
// and this page cannot reach into it. Refusals are said in the page.
(function () {
  "use strict";

  const config = {{ config|safe }};
  const script = (config.element && document.getElementById(config.element)) || document.currentScript;
  const box = document.createElement("div");
  box.className = "bokehsite-embed";
  box.dataset.state = "loading";
  if (script && script.parentNode) script.parentNode.insertBefore(box, script.nextSibling);
  else document.body.appendChild(box);

  const note = document.createElement("p");
  note.className = "bokehsite-embed-message";
  note.setAttribute("role", "status");
  note.style.cssText = "margin:.4em 0;padding:.5em .8em;border:1px solid #e4e7ec;border-radius:4px;" +
    "font:14px/1.4 system-ui,sans-serif;color:#b42318;background:#fff;";

  function say(state, text) {
    box.dataset.state = state;
    note.textContent = `${config.what || "Plot"} from ${config.server}: ${text}`;
    if (!note.parentNode) box.appendChild(note);
    if (state !== "closed") console.warn(`bokehsite: ${text}`);
  }

  if (config.error) {
    box.dataset.error = config.error.error;
    say("refused", config.error.detail);
    return;
  }
  // The server refuses pages whose browser names another origin; this says so at once when the
  // browser did not (the frame is also served only to the allowed origins' pages).
  if (config.origins && !config.origins.includes(window.location.origin)) {
    box.dataset.error = "origin_not_allowed";
    say("refused", `this page (${window.location.origin}) may not show this plot: its embed token allows only ` +
        config.origins.join(", "));
    return;
  }

  const frame = document.createElement("iframe");
  frame.className = "bokehsite-embed-frame";
  frame.title = config.title;
  frame.setAttribute("sandbox", "allow-scripts");
  frame.style.cssText = "display:block;border:0;width:100%;height:60px;";
  let heard = false;

  function start() {
    window.bokehsiteFrameHost.attach(frame, {
      tokenUrl: config.token_url, credentials: "omit", fitWidth: true,
      onState(state, reason) {
        heard = true;
        if (state === "closed") say("closed", `this plot stopped: ${reason}`);
        else box.dataset.state = state;
        if (state === "error") say("error", "the plot could not be drawn (see the browser's console)");
      },
    });
    frame.src = config.frame_url;
    box.appendChild(frame);
    setTimeout(() => {
      if (!heard) say("error", "the plot did not load here: this page's origin may not be allowed to show it, " +
                      "or the server could not be reached");
    }, config.timeout * 1000);
  }

  if (window.bokehsiteFrameHost) {
    start();
  } else {
    const loader = document.createElement("script");
    loader.src = config.host_script;
    loader.onload = start;
    loader.onerror = () => say("error", "the server could not be reached");
    document.head.appendChild(loader);
  }
})();
