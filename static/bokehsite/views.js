// Views of sources backed by a dataset (bokehsite.client.server_source): each plot that draws one
// asks the server for the view of its visible ranges at its size in pixels ("view"), whenever the
// user pans or zooms or the plot is resized: at once after a quiet spell, else once the gesture
// pauses. The answer ("view_data") is this viewer's alone. It is applied as a Bokeh patch, so
// BokehJS reports it as a change it did not make itself (not sync), and it never goes back to the
// server as the user's change.
(function () {
  "use strict";

  const MARK = "bokehsite_dataset";
  const PAUSE_MS = 40;  // changes closer together than this are one gesture (a wheel's, a pan's)
  // Counts of points per pixel, dark to light, transparent where there are none.
  const PALETTE = ["#000004", "#140e36", "#3b0f70", "#641a80", "#8c2981", "#b73779", "#de4968", "#f7705c",
                   "#fe9f6d", "#fecf92", "#fcfdbf"];

  function markOf(model) {
    for (const tag of model.tags ?? []) {
      const entries = tag instanceof Map ? tag : (tag && typeof tag === "object" ? new Map(Object.entries(tag)) : null);
      if (entries && entries.has(MARK)) return Object.fromEntries(entries);
    }
    return null;
  }

  // An image's means sent as 16-bit steps ({low, step}, see the protocol's view_data): as float32,
  // in place in the encoded ndarray and its buffer, before BokehJS reads them.
  function fromFixedPoint(ndarray, {low, step}, buffers) {
    const id = ndarray.array.data.id;
    const steps = new Uint16Array(buffers.get(id));
    const values = new Float32Array(steps.length);
    for (let i = 0; i < steps.length; i++) values[i] = low + step * steps[i];
    buffers.set(id, values.buffer);
    ndarray.dtype = "float32";
  }

  let unique = 0;
  const newId = (what) => `bks-view-${what}-${Date.now().toString(36)}-${++unique}`;

  class BackedViews {
    // send(type, fields): sends a protocol message; element: where the state is shown for tests.
    constructor(send, element) {
      this.send = send;
      this.element = element;
      this.nextId = 0;
      this.applied = 0;
    }

    // Find the backed sources of a (new) document and the plots that draw them.
    attach(doc) {
      const {ColumnDataSource} = Bokeh.require("models/sources/column_data_source");
      const {Plot} = Bokeh.require("models/plots/plot");
      const {GlyphRenderer} = Bokeh.require("models/renderers/glyph_renderer");
      this.doc = doc;
      this.backed = new Map();  // source id -> {source, mark, plot, renderers, latest, timer, image}
      const plots = [...doc.all_models].filter((m) => m instanceof Plot);
      for (const model of doc.all_models) {
        if (!(model instanceof ColumnDataSource)) continue;
        const mark = markOf(model);
        if (!mark) continue;
        for (const plot of plots) {
          const renderers = plot.renderers.filter((r) => r instanceof GlyphRenderer && r.data_source === model);
          if (renderers.length) {
            this.backed.set(model.id, {source: model, mark, plot, renderers, latest: null, timer: null, soon: false,
                                       changed: -Infinity, image: null});
            break;  // one plot asks for the views of a source
          }
        }
      }
      this.element.dataset.backedSources = String(this.backed.size);
    }

    // A change BokehJS reported: a range or size of a plot that draws a backed source.
    changed(event) {
      if (!this.backed || this.backed.size === 0) return;
      for (const e of event.events ?? [event]) {
        const model = e.model;
        if (!model) continue;
        for (const entry of this.backed.values()) {
          const {plot} = entry;
          if (model === plot.x_range || model === plot.y_range
              || (model === plot && (e.attr === "inner_width" || e.attr === "inner_height"))) {
            this.schedule(entry);
          }
        }
      }
    }

    // Ask again for every backed source (connected, or reconnected: the server forgets views).
    requestAll() {
      for (const entry of this.backed?.values() ?? []) this.schedule(entry);
    }

    // The first change after a quiet spell is asked for at once: in a microtask, so that the task
    // that made it has made its others too (a zoom sets both ranges) and the request leaves before
    // the plot is drawn again. The changes of a gesture that follow it are asked for when the
    // gesture pauses, so that a wheel spun costs the server two views, not one per step.
    schedule(entry) {
      const now = performance.now();
      const quiet = now - entry.changed >= PAUSE_MS;
      entry.changed = now;
      if (entry.soon) return;  // due at once: it reads the ranges as they are by then
      clearTimeout(entry.timer);
      const ask = () => {
        entry.soon = false;
        this.request(entry);
      };
      if (quiet) {
        entry.soon = true;
        queueMicrotask(ask);
      } else {
        entry.timer = setTimeout(ask, PAUSE_MS);
      }
    }

    request(entry) {
      const {plot, source} = entry;
      const [x0, x1] = [plot.x_range.start, plot.x_range.end].sort((a, b) => a - b);
      const [y0, y1] = [plot.y_range.start, plot.y_range.end].sort((a, b) => a - b);
      const width = Math.round(plot.inner_width), height = Math.round(plot.inner_height);
      if (!(width > 0 && height > 0 && x1 > x0 && y1 > y0)) return;  // not laid out yet
      entry.latest = ++this.nextId;
      this.send("view", {id: entry.latest, source: source.id, x0, x1, y0, y1, width, height});
    }

    // The server's answer; one to a request that was asked again since is stale, and dropped.
    receive(header, buffers) {
      const entry = this.backed?.get(header.source);
      if (!entry || header.id !== entry.latest) return;
      if (header.kind === "raster") {
        this.showRaster(entry, header, buffers);
      } else if (header.kind === "image") {
        this.showImage(entry, header, buffers);
      } else {
        this.patch([this.columnsEvent(entry.source.id, header.data)], buffers);
        if (entry.image) this.setVisible(entry, false);
      }
      this.applied += 1;
      Object.assign(this.element.dataset, {viewsApplied: String(this.applied), lastViewKind: header.kind,
                                           lastViewRows: String(header.rows)});
    }

    columnsEvent(sourceId, data) {
      return {kind: "ColumnDataChanged", model: {id: sourceId}, attr: "data",
              data: {type: "map", entries: Object.entries(data)}, cols: null};
    }

    patch(events, buffers) {
      this.doc.apply_json_patch({events}, buffers);
    }

    // A window of an image dataset: the source's own columns (image, x, y, dw, dh) take it.
    showRaster(entry, header, buffers) {
      const {x0, x1, y0, y1} = header;
      if (header.fixed) fromFixedPoint(header.data.image, header.fixed, buffers);
      const empty = !(x1 > x0 && y1 > y0);
      this.patch([this.columnsEvent(entry.source.id, empty ? {image: [], x: [], y: [], dw: [], dh: []}
        : {image: [header.data.image], x: [x0], y: [y0], dw: [x1 - x0], dh: [y1 - y0]})], buffers);
      Object.assign(this.element.dataset, {lastRasterShape: empty ? "0,0" : String(header.data.image.shape),
                                           lastRasterExtent: [x0, x1, y0, y1].join(",")});
    }

    // A scatter too dense to draw: an image of how many points fall in each pixel, drawn under
    // the scatter's own renderers (which are hidden meanwhile), with a colour bar. Many series
    // ("lines") too long to draw: the same, of how many series pass through each pixel.
    showImage(entry, header, buffers) {
      const {plot} = entry;
      if (!entry.image) {
        const ids = {renderer: newId("renderer"), source: newId("source"), glyph: newId("glyph"),
                     mapper: newId("mapper"), bar: newId("bar")};
        const mapper = {type: "object", name: "LogColorMapper", id: ids.mapper,
                        attributes: {palette: PALETTE, low: 1, low_color: "rgba(0, 0, 0, 0)"}};
        const field = (name) => ({type: "field", field: name});
        const renderer = {type: "object", name: "GlyphRenderer", id: ids.renderer, attributes: {
          level: "image",
          data_source: {type: "object", name: "ColumnDataSource", id: ids.source,
                        attributes: {data: {type: "map", entries: []}}},
          glyph: {type: "object", name: "Image", id: ids.glyph, attributes: {
            image: field("image"), x: field("x"), y: field("y"), dw: field("dw"), dh: field("dh"), color_mapper: {id: ids.mapper}}},
        }};
        const bar = {type: "object", name: "ColorBar", id: ids.bar, attributes: {color_mapper: mapper,
                     title: entry.mark.kind === "lines" ? "series" : "points"}};
        // BokehJS builds the views of a plot's new models after each change, then lays the plot
        // out: the bar goes in first, so that no layout finds it without its view; and it is made
        // visible, only the scatter's or the lines' renderers being hidden.
        this.patch([
          {kind: "ModelChanged", model: {id: plot.id}, attr: "right", new: [...plot.right.map((r) => ({id: r.id})), bar]},
          {kind: "ModelChanged", model: {id: plot.id}, attr: "renderers", new: [renderer, ...plot.renderers.map((r) => ({id: r.id}))]},
          ...entry.renderers.map((r) => ({kind: "ModelChanged", model: {id: r.id}, attr: "visible", new: false})),
        ], new Map());
        entry.image = ids;
        entry.imageShown = true;
      }
      const {x0, x1, y0, y1} = header;
      this.patch([this.columnsEvent(entry.image.source, {
        image: [header.data.image], x: [x0], y: [y0], dw: [x1 - x0], dh: [y1 - y0]})], buffers);
      this.setVisible(entry, true);
    }

    // The image and its bar, or the source's own renderers: a change only when it is one.
    setVisible(entry, image) {
      if (entry.imageShown === image) return;
      entry.imageShown = image;
      const events = [{kind: "ModelChanged", model: {id: entry.image.renderer}, attr: "visible", new: image},
                      {kind: "ModelChanged", model: {id: entry.image.bar}, attr: "visible", new: image},
                      ...entry.renderers.map((r) => ({kind: "ModelChanged", model: {id: r.id}, attr: "visible", new: !image}))];
      this.patch(events, new Map());
    }
  }

  window.bokehsiteViews = {BackedViews, markOf};
})();
