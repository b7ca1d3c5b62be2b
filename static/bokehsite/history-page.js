// The history page: a scrubber over the versions, play, pause and speed, and "Show" buttons in
// the versions table. The sandboxed frame (#plot-frame, history.js) draws; this page only tells
// it which version to show or which range to replay, and follows what it reports.
(function () {
  "use strict";

  const frame = document.getElementById("plot-frame");
  const scrubber = document.getElementById("scrubber");
  if (!frame || !scrubber) return;
  const output = document.getElementById("shown-version");
  const play = document.getElementById("play");
  const pause = document.getElementById("pause");
  const speed = document.getElementById("speed");
  const restoreVersion = document.getElementById("restore-version");
  let timer = null;

  function send(message) {
    frame.contentWindow.postMessage(message, "*");  // the frame's origin is opaque: "*" reaches it
  }

  function shown(version) {
    scrubber.value = String(version);
    output.value = String(version);
    frame.dataset.version = String(version);
    if (restoreVersion) restoreVersion.value = String(version);
    for (const link of document.querySelectorAll("#exports a[data-format]")) {  // export what is shown
      const url = new URL(link.href, location.href);
      url.searchParams.set("version", String(version));
      link.href = url.pathname + url.search;
    }
  }

  function playing(on) {
    play.disabled = on;
    pause.disabled = !on;
    frame.dataset.playing = String(on);
  }

  function showVersion(version) {
    playing(false);
    send({type: "bokehsite:show", version});
  }

  scrubber.addEventListener("input", () => {
    output.value = scrubber.value;
    clearTimeout(timer);  // one fetch when the thumb rests, not one per pixel dragged
    timer = setTimeout(() => showVersion(Number(scrubber.value)), 120);
  });
  play.addEventListener("click", () => {
    let from = Number(scrubber.value);
    const to = Number(scrubber.max);
    if (from >= to) from = Number(scrubber.min);  // at the end: play from the start
    playing(true);
    send({type: "bokehsite:play", from, to, speed: Number(speed.value)});
  });
  pause.addEventListener("click", () => send({type: "bokehsite:pause"}));
  speed.addEventListener("change", () => send({type: "bokehsite:speed", speed: Number(speed.value)}));
  for (const button of document.querySelectorAll(".show-version")) {
    button.addEventListener("click", () => showVersion(Number(button.dataset.version)));
  }

  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow || !event.data) return;
    const message = event.data;
    if (message.type === "bokehsite:at") shown(Number(message.version));
    else if (message.type === "bokehsite:ended") playing(false);
    else if (message.type === "bokehsite:history-error") {
      playing(false);
      frame.dataset.error = String(message.detail);
    }
  });
})();
