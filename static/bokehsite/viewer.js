// Renders a stored bokehsite document with BokehJS.
//
// The document arrives as a bundle: b"BKS1", a big-endian u32 header length, a JSON header
// ({"doc": <Bokeh document JSON>, "buffers": [[id, byteLength], ...]}), then the raw buffers.
// Arrays are never sent as JSON lists or base64; they become ArrayBuffers that BokehJS reads
// as typed arrays.
(function () {
  "use strict";

  const MAGIC = "BKS1";
  const CONTENT_TYPE = "application/vnd.bokehsite.bundle";

  function unpack(data) {
    const view = new DataView(data);
    const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== MAGIC) throw new Error("not a bokehsite bundle");
    const headLength = view.getUint32(4, false);
    let offset = 8 + headLength;
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 8, headLength)));
    const buffers = new Map();
    for (const [id, length] of header.buffers || []) {
      buffers.set(id, data.slice(offset, offset + length));
      offset += length;
    }
    return {header, buffers};
  }

  // In the sandboxed plot frame the document loads with the frame's signed token, never with
  // cookies (the frame has none anyway: its origin is opaque). Without a token, as before.
  function contentRequest(url, frameToken) {
    if (!frameToken) return [url, {headers: {Accept: CONTENT_TYPE}, credentials: "same-origin"}];
    const target = new URL(url, window.location.href);
    target.searchParams.set("frame_token", frameToken);
    return [target.href, {headers: {Accept: CONTENT_TYPE}, credentials: "omit"}];
  }

  async function fetchBundle(url, frameToken) {
    let response = await fetch(...contentRequest(url, frameToken));
    if (response.status === 401 && frameToken && window.bokehsiteFrame) {
      // The token expired (a frame reloaded long after its page): ask the page for a fresh one.
      response = await fetch(...contentRequest(url, await window.bokehsiteFrame.refreshToken()));
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(`could not load the document (HTTP ${response.status}): ${detail}`);
    }
    const {header, buffers} = unpack(await response.arrayBuffer());
    return {header, buffers, version: Number(response.headers.get("X-Document-Version"))};
  }

  async function render(element) {
    const {header, buffers, version} = await fetchBundle(element.dataset.docUrl, element.dataset.frameToken);
    const {Document} = Bokeh.require("document");
    const doc = Document.from_json(header.doc, undefined, buffers);
    element.replaceChildren();
    await Bokeh.embed.add_document_standalone(doc, element);
    element.dataset.version = String(version);
    element.dataset.state = "rendered";
    return doc;
  }

  window.bokehsite = {unpack, fetchBundle, render};

  const element = document.getElementById("plot");
  if (element) {
    render(element).catch((error) => {
      element.dataset.state = "error";
      element.replaceChildren(Object.assign(document.createElement("p"), {className: "status error", textContent: error.message}));
      console.error(error);
    });
  }
})();
