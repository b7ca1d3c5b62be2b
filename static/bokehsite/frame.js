// Runs inside the sandboxed plot frame, before viewer.js. The frame has an opaque origin: no
// cookies, no storage, and no way to reach the page around it except postMessage.
//
// window.bokehsiteFrame.token()          the current frame token (from #plot's data-frame-token)
// window.bokehsiteFrame.refreshToken()   asks the parent page for a fresh one (it has the viewer's
//                                        cookies); resolves to the new token, which token() then returns
// It also tells the parent page the frame's height and the plot's state, so the page can size the
// frame and show whether the plot rendered.
(function () {
  "use strict";

  const plot = document.getElementById("plot");
  const parent = window.parent !== window ? window.parent : null;
  let current = plot ? plot.dataset.frameToken || null : null;
  let nextId = 1;
  const pending = new Map();

  function post(message) {
    // The parent is this site's own page; "*" because a sandboxed frame cannot name an origin
    // the browser would match, and nothing secret is sent this way.
    if (parent) parent.postMessage(message, "*");
  }

  window.addEventListener("message", (event) => {
    if (event.source !== parent || !event.data || event.data.type !== "bokehsite:frame-token") return;
    const waiting = pending.get(event.data.id);
    if (!waiting) return;
    pending.delete(event.data.id);
    if (event.data.token) {
      current = event.data.token;
      waiting.resolve(current);
    } else {
      // refused: the page answered that this viewer may no longer see the document.
      waiting.reject(Object.assign(new Error(`no fresh frame token: ${event.data.error || "refused"}`),
                                   {refused: Boolean(event.data.refused), detail: event.data.detail || null}));
    }
  });

  function refreshToken(timeout = 10000) {
    if (!parent) return Promise.reject(new Error("not in a frame: no page to ask for a token"));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, {resolve, reject});
      post({type: "bokehsite:frame-token-request", id});
      setTimeout(() => {
        if (pending.delete(id)) reject(new Error("the page did not answer the frame token request"));
      }, timeout);
    });
  }

  window.bokehsiteFrame = {token: () => current, refreshToken};

  if (parent && plot) {
    // A plot that stopped for good (its access ended) says why: the page around may show it.
    const report = () => post({type: "bokehsite:frame-state", reason: plot.dataset.closedReason || null,
                               state: plot.dataset.closedReason ? "closed" : plot.dataset.state});
    new MutationObserver(report).observe(plot, {attributes: true, attributeFilter: ["data-state", "data-closed-reason"]});
    // The width of a plot of fixed size, when it differs from the frame's (a plot that
    // stretches is as wide as the frame, and the page decides that).
    const contentWidth = () => Math.max(0, ...Array.from(plot.children, (child) => {
      const box = child.getBoundingClientRect();
      return box.height > 0 ? box.right : 0;  // BokehJS adds an empty notifications bar
    }));
    const size = () => {
      const width = Math.ceil(contentWidth());
      post({type: "bokehsite:frame-size", height: document.documentElement.scrollHeight,
            width: width > 0 && Math.abs(width - window.innerWidth) > 1 ? width : 0});
    };
    const observer = new ResizeObserver(size);
    observer.observe(document.body);
    new MutationObserver(() => { for (const child of plot.children) observer.observe(child); })
      .observe(plot, {childList: true});
  }
})();
