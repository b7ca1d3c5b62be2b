// Runs in a history frame (the sandboxed plot frame with ?version=), after viewer.js. The page
// around it asks, by postMessage, to show a version ("bokehsite:show") or to replay the log as a
// film ("bokehsite:play" from, to, speed; "bokehsite:pause"; "bokehsite:speed"). A replay loads
// the first version once, then applies the logged changes here, in the browser, one by one at
// the pace they were made (or faster); it never asks the server to rebuild a frame. The frame
// tells the page which version it shows ("bokehsite:at") and when a replay ends.
(function () {
  "use strict";

  const plot = document.getElementById("plot");
  const parent = window.parent !== window ? window.parent : null;
  const {fetchBundle, embed} = window.bokehsite;
  // Long pauses in the log (a script that ran overnight) play as this long, divided by the speed.
  const MAX_GAP_MS = 2000;
  const PAGE = 1000;  // changes fetched at a time
  let doc = null;
  let version = 0;
  let run = 0;  // bumped to stop the replay in progress
  let speed = 1;

  function post(message) {
    if (parent) parent.postMessage(message, "*");  // the page's origin is ours; nothing secret
  }

  function at(shown) {
    version = shown;
    plot.dataset.version = String(shown);
    post({type: "bokehsite:at", version: shown});
  }

  function failed(error) {
    plot.dataset.state = "error";
    plot.replaceChildren(Object.assign(document.createElement("p"), {className: "status error", textContent: error.message}));
    post({type: "bokehsite:history-error", detail: error.message});
  }

  function withQuery(url, params) {
    const target = new URL(url, location.href);
    for (const [name, value] of Object.entries(params)) target.searchParams.set(name, String(value));
    return target.pathname + target.search;
  }

  async function show(wanted) {
    const {header, buffers} = await fetchBundle(withQuery(plot.dataset.docUrl, {version: wanted}), window.bokehsiteFrame.token());
    if (doc) doc.clear();
    doc = await embed(plot, header.doc, buffers);
    plot.dataset.state = "rendered";
    at(wanted);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

  async function replay(from, to) {
    const mine = ++run;
    if (version !== from) await show(from);
    let previous = null;
    while (version < to && run === mine) {
      const url = withQuery(plot.dataset.eventsUrl, {since: version, limit: Math.min(PAGE, to - version)});
      const {header, buffers} = await fetchBundle(url, window.bokehsiteFrame.token());
      if (run !== mine || header.items.length === 0) break;
      for (const item of header.items) {
        const made = Date.parse(item.created);
        if (previous !== null && speed > 0) await sleep(Math.min(made - previous, MAX_GAP_MS) / speed);
        else await nextFrame();
        previous = made;
        if (run !== mine) return;
        if (item.kind === "replace") {  // the whole document was replaced: its snapshot holds it
          await show(item.version);
        } else {
          const events = item.patch.events.filter((e) => e.kind !== "MessageSent");
          if (events.length) doc.apply_json_patch({...item.patch, events}, buffers);
          at(item.version);
        }
      }
    }
    if (run === mine) post({type: "bokehsite:ended", version});
  }

  window.addEventListener("message", (event) => {
    if (event.source !== parent || !event.data) return;
    const message = event.data;
    if (message.type === "bokehsite:show") {
      run++;
      show(Number(message.version)).catch(failed);
    } else if (message.type === "bokehsite:play") {
      speed = Number(message.speed) || 0;
      replay(Number(message.from), Number(message.to)).catch(failed);
    } else if (message.type === "bokehsite:speed") {
      speed = Number(message.speed) || 0;
    } else if (message.type === "bokehsite:pause") {
      run++;
      post({type: "bokehsite:ended", version});
    }
  });

  window.bokehsite.loaded.then(({doc: first, version: shown}) => {
    doc = first;
    at(shown);
  }).catch(() => { /* viewer.js shows the error */ });
  window.bokehsite.history = {show, replay, version: () => version};
})();
