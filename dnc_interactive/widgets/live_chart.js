// Live vega views for the dnc-interactive dashboard (an anywidget front end).
//
// This file has no imports: Python bundles it with vl-convert's `javascript_bundle`, which
// provides `vegaEmbed` offline, without any CDN (changesets come from `view.changeset()`).
//
// The widget holds named slots ("stream", "clouds", "snapshot"), each one vega view. Python sends:
//   {type: "spec", slot, spec, target?}          embed a new Vega-Lite spec in the slot
//   {type: "rows", slot, rows, remove, reset?}   stream rows into the slot's "rows" dataset
//                                                (rows are [id, step, layer, kind, metric, value],
//                                                remove is a list of row ids to drop)
//   {type: "data", slot, datasets}               replace whole named datasets (snapshots)
// Messages with a `target` are meant for one view only (the replay after "ready").
// Each view announces itself with {type: "ready", id}; Python then replays the current specs
// and rows to that view, which is how page reloads and second views catch up.
// A spec with usermeta.dncFit = {cell, max} is a wrapping concat: it gets as many columns
// (at most `max`) as the slot's width holds cells of `cell` pixels, and is re-embedded with
// its rows when a resize changes that number (a narrow notebook, a wide Voila page).
// Test hooks: data-stream-rows / data-stream-step, data-clouds-points / data-clouds-sum (the
// number of cloud points and a checksum of their coordinates), and data-<slot>-panels, the page-relative
// boxes [x, y, width, height] of the top-level panels of each view.

function toRow(r) {
  return { id: r[0], step: r[1], layer: r[2], kind: r[3], metric: r[4], value: r[5] };
}

function showError(slot, error) {
  const box = document.createElement("div");
  box.className = "dnc-live-error";
  box.textContent = "Chart error: " + (error && error.message ? error.message : String(error));
  slot.div.appendChild(box);
  console.error("dnc-interactive live chart:", error);
}

function render({ model, el }) {
  const id = Math.random().toString(36).slice(2) + Date.now().toString(36);
  el.classList.add("dnc-live");
  const slots = {};
  for (const name of ["stream", "clouds", "snapshot"]) {
    const div = document.createElement("div");
    div.className = "dnc-live-slot dnc-live-" + name;
    el.appendChild(div);
    slots[name] = { name, div, view: null, chain: Promise.resolve(), updates: 0 };
  }
  el.dataset.updates = "0";

  function publish(slot) {
    // Test hooks: how many rows the view holds and the largest step it has seen.
    if (!slot.view) return;
    slot.updates += 1;
    el.dataset[slot.name + "Updates"] = String(slot.updates);
    if (slot.name === "stream") {
      const rows = slot.view.data("rows") || [];
      let maxStep = -1;
      for (const r of rows) if (r.step > maxStep) maxStep = r.step;
      el.dataset.streamRows = String(rows.length);
      el.dataset.streamStep = String(maxStep);
    }
    if (slot.name === "clouds") {
      let points = 0;
      let sum = 0;
      try {
        const cloud = slot.view.data("cloud") || [];
        points = cloud.length;
        for (const p of cloud) sum += Math.abs(p.x) + Math.abs(p.y);
      } catch (err) {
        points = 0; // a spec without the "cloud" dataset
      }
      el.dataset.cloudsPoints = String(points);
      el.dataset.cloudsSum = sum.toPrecision(8);
    }
    el.dataset[slot.name + "Panels"] = JSON.stringify(panelBoxes(slot));
  }

  function panelBoxes(slot) {
    // The bounds of the top-level concat cells (title, axes and legends included).
    const canvas = slot.div.querySelector("canvas");
    if (!slot.view || !canvas) return [];
    const rect = canvas.getBoundingClientRect();
    const [ox, oy] = slot.view.origin();
    const root = slot.view.scenegraph().root; // the root mark; its one item holds the marks
    const top = root.items && root.items[0] ? root.items[0] : root;
    const cells = [];
    for (const mark of top.items || []) {
      if (mark.marktype !== "group" || !/^concat_\d+_group$/.test(mark.name || "")) continue;
      for (const item of mark.items || []) cells.push(item.bounds);
    }
    if (!cells.length && top.bounds) cells.push(top.bounds);
    return cells.map((b) => [
      Math.round(rect.left + window.scrollX + ox + b.x1),
      Math.round(rect.top + window.scrollY + oy + b.y1),
      Math.round(b.x2 - b.x1),
      Math.round(b.y2 - b.y1),
    ]);
  }

  function fitted(slot, spec) {
    const fit = spec && spec.usermeta && spec.usermeta.dncFit;
    if (!fit || !spec.concat) return spec;
    const width = slot.div.clientWidth || el.clientWidth || 0;
    const columns = width
      ? Math.max(1, Math.min(fit.max, Math.floor(width / fit.cell)))
      : fit.max;
    slot.columns = columns;
    return Object.assign({}, spec, { columns });
  }

  async function embed(slot, spec, rows) {
    if (slot.view) {
      slot.view.finalize();
      slot.view = null;
    }
    slot.div.replaceChildren();
    slot.spec = spec;
    if (!spec) return;
    spec = fitted(slot, spec);
    // Re-run the layout on every update: streamed data changes axis label widths, and the
    // default autosize (layout once at embed time) would clip the grown view.
    spec = Object.assign({}, spec, { autosize: { type: "pad", resize: true } });
    const result = await vegaEmbed(slot.div, spec, {
      renderer: "canvas",
      logLevel: 1, // errors only (empty layers warn about infinite extents)
      actions: { export: true, source: false, compiled: false, editor: false },
    });
    slot.view = result.view;
    if (rows && rows.length) {
      await slot.view.change("rows", slot.view.changeset().insert(rows)).runAsync();
    }
    publish(slot);
  }

  function refit(slot) {
    // Re-embed when the page width changes the number of columns; the rows are kept.
    const fit = slot.spec && slot.spec.usermeta && slot.spec.usermeta.dncFit;
    if (!fit || !slot.view) return;
    const width = slot.div.clientWidth || el.clientWidth || 0;
    if (!width) return;
    const columns = Math.max(1, Math.min(fit.max, Math.floor(width / fit.cell)));
    if (columns === slot.columns) return;
    slot.chain = slot.chain
      .then(() => {
        // the stream's rows are copied over; other slots keep their data in slot.spec
        const rows = (slot.name === "stream" && slot.view && slot.view.data("rows")) || [];
        const copy = rows.map((r) => ({
          id: r.id, step: r.step, layer: r.layer, kind: r.kind, metric: r.metric, value: r.value,
        }));
        return embed(slot, slot.spec, copy);
      })
      .catch((err) => showError(slot, err));
  }

  async function streamRows(slot, msg) {
    if (!slot.view) return;
    const cs = slot.view.changeset();
    if (msg.reset) {
      cs.remove(() => true);
    } else if (msg.remove && msg.remove.length) {
      const gone = new Set(msg.remove);
      cs.remove((d) => gone.has(d.id));
    }
    cs.insert(msg.rows.map(toRow));
    await slot.view.change("rows", cs).runAsync();
    publish(slot);
  }

  async function replaceData(slot, msg) {
    if (!slot.view) return;
    for (const [name, values] of Object.entries(msg.datasets)) {
      if (slot.spec && slot.spec.datasets && name in slot.spec.datasets) {
        slot.spec.datasets[name] = values; // a re-embed (refit) keeps the latest data
      }
      try {
        slot.view.change(name, slot.view.changeset().remove(() => true).insert(values));
      } catch (err) {
        console.warn("dnc-interactive live chart: no dataset", name); // pruned by vega
      }
    }
    await slot.view.runAsync();
    publish(slot);
  }

  async function handle(slot, msg) {
    if (msg.type === "spec") return embed(slot, msg.spec);
    if (msg.type === "rows") return streamRows(slot, msg);
    if (msg.type === "data") return replaceData(slot, msg);
  }

  function onMessage(msg) {
    if (!msg || (msg.target && msg.target !== id)) return;
    const slot = slots[msg.slot];
    if (!slot) return;
    // One promise chain per slot keeps messages in order while a spec is being embedded.
    slot.chain = slot.chain.then(() => handle(slot, msg)).catch((err) => showError(slot, err));
  }

  model.on("msg:custom", onMessage);
  model.send({ type: "ready", id });
  let timer = null;
  const observer =
    typeof ResizeObserver === "undefined"
      ? null
      : new ResizeObserver(() => {
          clearTimeout(timer);
          timer = setTimeout(() => Object.values(slots).forEach(refit), 150);
        });
  if (observer) observer.observe(el);
  return () => {
    if (observer) observer.disconnect();
    clearTimeout(timer);
    model.off("msg:custom", onMessage);
    for (const slot of Object.values(slots)) {
      if (slot.view) slot.view.finalize();
    }
  };
}

export default { render };
