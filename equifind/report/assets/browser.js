/* equifind family browser: views drawn from the page's JSON data (equifind/report/_page_data.py).
 *
 * Plain ES2017, no library, no network. Every text from the data goes into the DOM through
 * textContent or attributes (never innerHTML), so layer names like "conv<1>" stay text.
 * Views are chosen by the URL hash: #overview, #families, #family=<key>, #unit=<key>, #circuit=<key>.
 */
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("equifind-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const FAMILIES = new Map(DATA.families.map((f) => [f.key, f]));
  const CIRCUITS = new Map(DATA.circuits.map((c) => [c.key, c]));
  const PALETTE = {families: "#2a7ab0", selective: "#8cc0de", invariant: "#e3a857", achromatic: "#b9a6d6", silent: "#d9d9d6"};
  const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];

  // ------------------------------------------------------------------ DOM helpers

  function append(node, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(node, c);
      else node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, String(v));
    }
    return node;
  }

  function el(tag, attrs, ...children) {
    return append(setAttrs(document.createElement(tag), attrs), children);
  }

  function svgEl(tag, attrs, ...children) {
    return append(setAttrs(document.createElementNS(SVGNS, tag), attrs), children);
  }

  function href(view, key) {
    return "#" + view + (key === undefined ? "" : "=" + encodeURIComponent(key));
  }

  function link(view, key, text, attrs) {
    return el("a", Object.assign({href: href(view, key)}, attrs || {}), text);
  }

  function fmt(x, digits) {
    return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits === undefined ? 3 : digits);
  }

  function fieldList(fields) {
    return el("dl", {class: "fields"}, fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  // ------------------------------------------------------------------ data decoding

  function bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /** uint8 base64 [n * s] -> n rows of s numbers in [0, 1]. */
  function rows(b64, n, s) {
    const b = bytes(b64);
    const out = [];
    for (let i = 0; i < n; i++) out.push(Array.from(b.subarray(i * s, (i + 1) * s), (v) => v / 255));
    return out;
  }

  function viridis(t) {
    const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
    return mix(VIRIDIS[i], VIRIDIS[i + 1], x - i);
  }

  /** v in [-1, 1]: blue (inhibition), white, red (excitation). */
  function redBlue(v) {
    return v >= 0 ? mix("#ffffff", "#b2182b", Math.min(v, 1)) : mix("#ffffff", "#2166ac", Math.min(-v, 1));
  }

  function mix(a, b, t) {
    const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16));
    const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16));
    return "rgb(" + pa.map((c, i) => Math.round(c + (pb[i] - c) * t)).join(",") + ")";
  }

  // ------------------------------------------------------------------ plots (SVG)

  /**
   * A heatmap of rows x columns in [0, 1].
   * opts: rowLabels [n], colTicks [s], xLabel, yLabel, marks [[row, col]] (circles), blocks (vertical lines
   * every k columns), onRow(i) -> href for row labels, id.
   */
  function heatmap(data, opts) {
    const n = data.length;
    const s = n ? data[0].length : 0;
    const cw = Math.max(2, Math.min(24, Math.floor(640 / Math.max(s, 1))));
    const ch = Math.max(4, Math.min(18, Math.floor(420 / Math.max(n, 1))));
    const left = 64, top = 10, bottom = 44;
    const w = left + cw * s + 90, h = top + ch * n + bottom;
    const svg = svgEl("svg", {id: opts.id, width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                              "data-rows": n, "data-cols": s});
    const cells = svgEl("g", {class: "cells"});
    data.forEach((row, i) => row.forEach((v, j) => {
      cells.appendChild(svgEl("rect", {x: left + j * cw, y: top + i * ch, width: cw, height: ch, fill: viridis(v)}));
    }));
    svg.appendChild(cells);
    if (opts.blocks) {
      for (let j = opts.blocks; j < s; j += opts.blocks) {
        svg.appendChild(svgEl("line", {x1: left + j * cw, x2: left + j * cw, y1: top, y2: top + n * ch, stroke: "#fff"}));
      }
    }
    for (const [r, c] of opts.marks || []) {
      svg.appendChild(svgEl("circle", {cx: left + (c + 0.5) * cw, cy: top + (r + 0.5) * ch, r: Math.max(2, Math.min(cw, ch) / 2.5),
                                       fill: "none", stroke: "#fff", "stroke-width": 1.2}));
    }
    const rowStep = Math.max(1, Math.ceil(n / 40));
    for (let i = 0; i < n; i += rowStep) {
      const label = svgEl("text", {x: left - 4, y: top + (i + 0.5) * ch + 3, "text-anchor": "end"}, opts.rowLabels[i]);
      svg.appendChild(opts.onRow ? svgEl("a", {href: opts.onRow(i)}, label) : label);
    }
    const colStep = Math.max(1, Math.ceil(s / 9));
    for (let j = 0; j < s; j += colStep) {
      svg.appendChild(svgEl("text", {x: left + (j + 0.5) * cw, y: top + n * ch + 13, "text-anchor": "middle"}, opts.colTicks[j]));
    }
    svg.appendChild(svgEl("text", {x: left + (s * cw) / 2, y: h - 6, "text-anchor": "middle"}, opts.xLabel));
    svg.appendChild(svgEl("text", {x: 10, y: top + (n * ch) / 2, "text-anchor": "middle",
                                   transform: `rotate(-90 10 ${top + (n * ch) / 2})`}, opts.yLabel));
    svg.appendChild(colourBar(left + s * cw + 14, top, Math.max(60, Math.min(n * ch, 200)), viridis, "0", "1"));
    return svg;
  }

  function colourBar(x, y, height, cmap, lo, hi) {
    const g = svgEl("g", {class: "colourbar"});
    const k = 20;
    for (let i = 0; i < k; i++) {
      g.appendChild(svgEl("rect", {x: x, y: y + (height * i) / k, width: 10, height: height / k + 0.5, fill: cmap(1 - i / (k - 1))}));
    }
    g.appendChild(svgEl("text", {x: x + 14, y: y + 8}, hi));
    g.appendChild(svgEl("text", {x: x + 14, y: y + height}, lo));
    return g;
  }

  /** Normalised tuning curves on a circle: angle = degrees (0 at the right, counter-clockwise), radius = response. */
  function polar(curves, deg, colours, units, id) {
    const R = 130, cx = 160, cy = 150, w = 420, h = 310;
    const svg = svgEl("svg", {id: id, width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img"});
    for (const r of [0.5, 1]) svg.appendChild(svgEl("circle", {cx, cy, r: r * R, fill: "none", stroke: "#ccc"}));
    for (let a = 0; a < 360; a += 45) {
      const t = (a * Math.PI) / 180;
      svg.appendChild(svgEl("line", {x1: cx, y1: cy, x2: cx + R * Math.cos(t), y2: cy - R * Math.sin(t), stroke: "#eee"}));
      svg.appendChild(svgEl("text", {x: cx + (R + 12) * Math.cos(t), y: cy - (R + 12) * Math.sin(t) + 3, "text-anchor": "middle"}, a + "°"));
    }
    curves.forEach((row, i) => {
      const pts = row.map((v, j) => {
        const t = (deg[j] * Math.PI) / 180;
        return [cx + v * R * Math.cos(t), cy - v * R * Math.sin(t)];
      });
      pts.push(pts[0]);
      svg.appendChild(svgEl("path", {d: "M" + pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join("L"),
                                     fill: "none", stroke: colours[i], "stroke-width": 1.6, "data-unit": units[i]}));
      const peak = row.indexOf(Math.max.apply(null, row));
      svg.appendChild(svgEl("circle", {cx: pts[peak][0], cy: pts[peak][1], r: 3, fill: colours[i]}));
    });
    units.slice(0, 16).forEach((u, i) => {
      svg.appendChild(svgEl("rect", {x: 330, y: 12 + i * 15, width: 10, height: 10, fill: colours[i]}));
      svg.appendChild(svgEl("text", {x: 345, y: 21 + i * 15}, String(u)));
    });
    return svg;
  }

  /** One line per row over the columns (values in [0, 1]); highlight: the row drawn thick. */
  function lines(data, opts) {
    const s = data[0].length, w = 640, h = 220, left = 44, top = 10, pw = w - left - 20, ph = h - top - 44;
    const svg = svgEl("svg", {id: opts.id, width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img"});
    svg.appendChild(svgEl("rect", {x: left, y: top, width: pw, height: ph, fill: "#fff", stroke: "#ccc"}));
    const x = (j) => left + (s > 1 ? (j * pw) / (s - 1) : pw / 2);
    const y = (v) => top + ph * (1 - v);
    data.forEach((row, i) => {
      if (i === opts.highlight) return;
      svg.appendChild(svgEl("path", {d: "M" + row.map((v, j) => x(j).toFixed(1) + "," + y(v).toFixed(1)).join("L"),
                                     fill: "none", stroke: "#9ab", "stroke-width": 0.8}));
    });
    const best = data[opts.highlight];
    svg.appendChild(svgEl("path", {d: "M" + best.map((v, j) => x(j).toFixed(1) + "," + y(v).toFixed(1)).join("L"),
                                   fill: "none", stroke: "#c0392b", "stroke-width": 2}));
    const colStep = Math.max(1, Math.ceil(s / 9));
    for (let j = 0; j < s; j += colStep) {
      svg.appendChild(svgEl("text", {x: x(j), y: top + ph + 13, "text-anchor": "middle"}, opts.colTicks[j]));
    }
    svg.appendChild(svgEl("text", {x: left - 4, y: top + 8, "text-anchor": "end"}, opts.hi));
    svg.appendChild(svgEl("text", {x: left - 4, y: top + ph, "text-anchor": "end"}, opts.lo));
    svg.appendChild(svgEl("text", {x: left + pw / 2, y: h - 6, "text-anchor": "middle"}, opts.xLabel));
    return svg;
  }

  /** Expanded weights: target rows x source columns of kh x kw kernels, red excitation, blue inhibition. */
  function weightGrid(c) {
    const [T, S, kh, kw] = c.weights.shape;
    const b = bytes(c.weights.data);
    const gap = kh > 1 || kw > 1 ? 1 : 0;
    const px = Math.max(1, Math.min(18, Math.floor(720 / (S * (kw + gap)))));
    const left = 56, top = 40;
    const w = Math.max(320, left + S * (kw + gap) * px + 20), h = top + T * (kh + gap) * px + 10;
    const svg = svgEl("svg", {id: "weight-grid", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                              "data-cells": T * S * kh * kw});
    const g = svgEl("g", {"shape-rendering": "crispEdges"});
    for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const v = (b[((t * S + s) * kh + i) * kw + j] - 128) / 127;
      g.appendChild(svgEl("rect", {x: left + (s * (kw + gap) + j) * px, y: top + (t * (kh + gap) + i) * px,
                                   width: px, height: px, fill: redBlue(v)}));
    }
    svg.appendChild(g);
    const step = (n) => Math.max(1, Math.ceil(n / 32));
    for (let s = 0; s < S; s += step(S)) {
      const x = left + (s * (kw + gap) + kw / 2) * px;
      svg.appendChild(svgEl("text", {x, y: top - 6, "text-anchor": "middle"}, String(c.sourceUnits[s])));
    }
    for (let t = 0; t < T; t += step(T)) {
      const y = top + (t * (kh + gap) + kh / 2) * px + 3;
      svg.appendChild(svgEl("text", {x: left - 4, y, "text-anchor": "end"}, String(c.targetUnits[t])));
    }
    svg.appendChild(svgEl("text", {x: left, y: 12}, `source: ${c.sourceLayer} unit →`));
    svg.appendChild(svgEl("text", {x: 10, y: top + (T * (kh + gap) * px) / 2, "text-anchor": "middle",
                                   transform: `rotate(-90 10 ${top + (T * (kh + gap) * px) / 2})`}, `target: ${c.targetLayer} unit`));
    return svg;
  }

  function figure(caption, node) {
    return el("figure", {}, node, el("figcaption", {}, caption));
  }

  // ------------------------------------------------------------------ overview

  function overview() {
    const out = [el("h2", {id: "view-title"}, "Overview")];
    if (DATA.banner && DATA.banner.length) {
      out.push(el("div", {class: "banner", id: "incomplete-banner"}, el("strong", {}, DATA.banner[0]),
                  DATA.banner.slice(1).map((t) => el("div", {}, t))));
    }
    out.push(el("table", {id: "scan-header"},
      el("tr", {}, el("th", {}, "model"), el("td", {}, DATA.model)),
      el("tr", {}, el("th", {}, "layers"), el("td", {}, DATA.layers.join(", "))),
      el("tr", {}, el("th", {}, "transforms"), el("td", {}, DATA.transforms.join(", "))),
      DATA.config.map(([k, v]) => el("tr", {}, el("th", {}, "config: " + k), el("td", {}, v)))));
    out.push(el("h3", {}, "Families per layer and transform"), summaryTable(),
             DATA.notScanned.map((t) => el("p", {class: "note"}, t)));
    out.push(el("h3", {}, "Units per layer and transform"), unitBars());
    const largest = DATA.families.filter((f) => !f.explained).sort((a, b) => b.n - a.n).slice(0, 12);
    out.push(el("h3", {}, "Largest families"),
             largest.length ? el("ol", {id: "largest-families"}, largest.map((f) => el("li", {}, link("family", f.key, f.title))))
                            : el("p", {class: "muted"}, "No families found."),
             el("p", {}, link("families", undefined, `All ${DATA.families.length} families, sortable and filterable →`)));
    out.push(el("h3", {}, "Circuits"), el("div", {id: "circuit-summary"}, DATA.circuitSummary.map((t) => el("p", {}, t))),
             circuitTable());
    out.push(el("h3", {}, "Significance"), el("p", {class: "legend", id: "legend"}, DATA.legend));
    if (DATA.summary) out.push(el("details", {}, el("summary", {}, "Scan summary (text)"), el("pre", {}, DATA.summary)));
    return out;
  }

  function unitBars() {
    const parts = ["families", "selective", "invariant", "achromatic", "silent"];
    const names = {families: "in families", selective: "selective, in no family", invariant: "invariant",
                   achromatic: "achromatic (hue)", silent: "silent"};
    const rowH = 18, left = 170, width = 560, w = left + width + 120;
    const svg = svgEl("svg", {id: "unit-bars", width: w, height: DATA.bars.length * rowH + 8, role: "img"});
    DATA.bars.forEach((b, i) => {
      const y = 4 + i * rowH;
      const total = b.probed || parts.reduce((a, p) => a + (b[p] || 0), 0) || 1;
      svg.appendChild(svgEl("text", {x: left - 6, y: y + 12, "text-anchor": "end"}, `${b.layer} · ${b.transform}`));
      let x = left;
      for (const p of parts) {
        const v = b[p] || 0;
        if (!v) continue;
        const bw = (v / total) * width;
        svg.appendChild(svgEl("rect", {x, y, width: bw, height: rowH - 4, fill: PALETTE[p], "data-part": p},
                              svgEl("title", {}, `${b.layer} · ${b.transform}: ${v} ${names[p]}`)));
        x += bw;
      }
      svg.appendChild(svgEl("text", {x: left + width + 6, y: y + 12}, b.probed === null ? "probed: n/a" : `${b.probed} probed`));
    });
    const key = el("div", {class: "muted"}, parts.map((p) => [el("span", {class: "swatch", style: "background:" + PALETTE[p]}), names[p]]));
    return el("div", {}, svg, key);
  }

  /** Per layer and transform: families (flip pairs explained by rotation apart), how many are significant,
   * confirmed by weights and held out; each row opens the family table filtered to it. */
  function summaryTable() {
    const head = ["layer · transform", "units probed", "families", `discovery q ≤ ${DATA.alpha}`, "confirmed by weights",
                  "held out", "units in families", "flip pairs explained by rotation"];
    return el("table", {id: "summary-table"}, el("tr", {}, head.map((h) => el("th", {}, h))), DATA.bars.map((b) => {
      const all = DATA.families.filter((f) => f.layer === b.layer && f.transform === b.transform);
      const fams = all.filter((f) => !f.explained);
      const cells = [b.probed === null ? "n/a" : b.probed, fams.length, fams.filter((f) => f.q !== null && f.q <= DATA.alpha).length,
                     countOr(fams, (f) => f.weights === "confirmed by weights", (f) => f.weights !== "weights not checked", "not checked"),
                     countOr(fams, (f) => f.heldout === true, (f) => f.heldout !== null, "not validated"),
                     b.families, all.length - fams.length];
      return el("tr", {"data-key": b.layer + "|" + b.transform},
                el("td", {}, link("families", b.layer + "|" + b.transform, `${b.layer} · ${b.transform}`)),
                cells.map((c) => el("td", {class: "num"}, String(c))));
    }));
  }

  /** How many of ``fams`` pass ``test``; ``none`` when no family was examined (``examined``), and "n/a" without
   * families, so that a 0 always means "examined, and none passed". */
  function countOr(fams, test, examined, none) {
    if (!fams.length) return "n/a";
    return fams.some(examined) ? fams.filter(test).length : none;
  }

  function circuitTable() {
    if (!DATA.circuits.length) return null;
    const order = DATA.circuits.slice().sort((a, b) => (b.score === null ? -1 : b.score) - (a.score === null ? -1 : a.score));
    const famLink = (k) => (k ? link("family", k, FAMILIES.get(k).title) : "no family with exactly these units");
    return el("table", {id: "circuit-table"},
      el("tr", {}, ["circuit", "kind", "score", "q", "source family", "target family"].map((h) => el("th", {}, h))),
      order.map((c) => el("tr", {"data-key": c.key},
        el("td", {}, link("circuit", c.key, c.title)), el("td", {}, c.kind), el("td", {class: "num"}, fmt(c.score)),
        el("td", {class: "num"}, fmt(c.q, 4)), el("td", {}, famLink(c.sourceFamily)), el("td", {}, famLink(c.targetFamily)))));
  }

  // ------------------------------------------------------------------ family table

  const COLUMNS = [
    {id: "title", label: "family", get: (f) => f.title, text: true},
    {id: "layer", label: "layer", get: (f) => DATA.layers.indexOf(f.layer), show: (f) => f.layer},
    {id: "transform", label: "transform", get: (f) => f.transform, text: true},
    {id: "n", label: "units", get: (f) => f.n},
    {id: "period", label: "period", get: (f) => f.period, show: (f) => f.periodText},
    {id: "score", label: "discovery score", get: (f) => f.score, show: (f) => fmt(f.score)},
    {id: "q", label: "discovery q", get: (f) => f.q, show: (f) => fmt(f.q, 4)},
    {id: "eq", label: "equivariance", get: (f) => f.eq, show: (f) => fmt(f.eq)},
    {id: "eqQ", label: "equivariance q", get: (f) => f.eqQ, show: (f) => fmt(f.eqQ, 4)},
    {id: "heldout", label: "held out", get: (f) => (f.heldout === null ? -1 : Number(f.heldout)),
     show: (f) => (f.heldout === null ? "not validated" : f.heldout ? "held out" : "did not hold out")},
    {id: "weights", label: "weights", get: (f) => f.weights || "", text: true},
    {id: "colour", label: "colour index", get: (f) => f.colour, show: (f) => fmt(f.colour, 2)},
  ];
  const state = {sort: "layer", dir: "asc", filters: {}};

  function passes(f, flt) {
    if (flt.layer && f.layer !== flt.layer) return false;
    if (flt.transform && f.transform !== flt.transform) return false;
    if (flt.minSize && f.n < Number(flt.minSize)) return false;
    if (flt.period && f.periodText !== flt.period) return false;
    if (flt.significant && !(f.q !== null && f.q <= DATA.alpha)) return false;
    if (flt.confirmed && f.weights !== "confirmed by weights") return false;
    if (flt.heldout && f.heldout !== true) return false;
    if (flt.colour !== undefined && flt.colour !== "" && !(f.colour !== null && f.colour >= Number(flt.colour))) return false;
    return true;
  }

  function sortedFamilies() {
    const col = COLUMNS.find((c) => c.id === state.sort);
    const sign = state.dir === "asc" ? 1 : -1;
    return DATA.families.filter((f) => passes(f, state.filters)).sort((a, b) => {
      const x = col.get(a), y = col.get(b);
      if (x === null || y === null) return (x === null) - (y === null);  // unknown values last
      const d = col.text ? String(x).localeCompare(String(y)) : x - y;
      return d * sign || DATA.families.indexOf(a) - DATA.families.indexOf(b);
    });
  }

  function select(id, name, options) {
    const s = el("select", {id, onchange: (e) => { state.filters[name] = e.target.value; refreshTable(); }},
                 el("option", {value: ""}, "all"), options.map((o) => el("option", {value: o}, o)));
    s.value = state.filters[name] || "";
    return s;
  }

  function input(id, name, type, attrs) {
    const i = el("input", Object.assign({id, type}, attrs || {}));
    if (type === "checkbox") {
      i.checked = Boolean(state.filters[name]);
      i.addEventListener("change", () => { state.filters[name] = i.checked; refreshTable(); });
    } else {
      i.value = state.filters[name] || "";
      i.addEventListener("input", () => { state.filters[name] = i.value; refreshTable(); });
      i.addEventListener("change", () => { state.filters[name] = i.value; refreshTable(); });
    }
    return i;
  }

  /** The family table; ``key`` "layer|transform" (from the overview's summary) sets those two filters. */
  function familiesView(key) {
    if (key !== undefined) {
      const cut = key.lastIndexOf("|");
      state.filters = {layer: key.slice(0, cut), transform: key.slice(cut + 1)};
    }
    const distinct = (get) => Array.from(new Set(DATA.families.map(get)));
    const controls = el("div", {class: "controls", id: "family-filters"},
      el("label", {}, "layer ", select("filter-layer", "layer", DATA.layers)),
      el("label", {}, "transform ", select("filter-transform", "transform", DATA.transforms)),
      el("label", {}, "min size ", input("filter-min-size", "minSize", "number", {min: 0, step: 1})),
      el("label", {}, "period ", select("filter-period", "period", distinct((f) => f.periodText))),
      el("label", {}, input("filter-significant", "significant", "checkbox"), ` discovery q ≤ ${DATA.alpha}`),
      el("label", {}, input("filter-confirmed", "confirmed", "checkbox"), " confirmed by weights"),
      el("label", {}, input("filter-heldout", "heldout", "checkbox"), " held out"),
      el("label", {}, "colour index ≥ ", input("filter-colour", "colour", "number", {min: 0, max: 1, step: 0.05})));
    const head = el("tr", {}, COLUMNS.map((c) => el("th", {"data-col": c.id, onclick: () => sortBy(c.id)}, c.label)));
    const table = el("table", {id: "family-table"}, el("thead", {}, head), el("tbody", {}));
    const count = el("div", {id: "family-count"});
    fillTable(table, count);
    return [el("h2", {id: "view-title"}, "Families"), controls, count, table];
  }

  function sortBy(id) {
    state.dir = state.sort === id && state.dir === "asc" ? "desc" : "asc";
    state.sort = id;
    refreshTable();
  }

  function refreshTable() {
    const table = document.getElementById("family-table");
    if (table) fillTable(table, document.getElementById("family-count"));
  }

  function fillTable(table, count) {
    const shown = sortedFamilies();
    const body = table.tBodies[0];
    body.replaceChildren(...shown.map((f) => el("tr", {"data-key": f.key},
      COLUMNS.map((c) => {
        const text = c.show ? c.show(f) : String(c.get(f));
        return el("td", {class: c.text || c.id === "layer" ? null : "num"}, c.id === "title" ? link("family", f.key, text) : text);
      }))));
    for (const th of table.tHead.rows[0].cells) th.setAttribute("data-dir", th.dataset.col === state.sort ? state.dir : "");
    count.textContent = `${shown.length} of ${DATA.families.length} families`;
    count.dataset.shown = shown.length;
    count.dataset.total = DATA.families.length;
  }

  // ------------------------------------------------------------------ family view

  function familyView(key) {
    const f = FAMILIES.get(key);
    if (!f) return notFound("family", key);
    const out = [el("h2", {id: "view-title", "data-key": f.key}, f.title), el("div", {class: "card"}, fieldList(f.fields))];
    out.push(el("h3", {}, "Plots"), f.plots ? familyPlots(f) : el("p", {class: "note"},
      "No tuning, stimulus or equivariance plots: they need the layer's Responses (pass responses=, or keep them in the ScanResult)."));
    out.push(el("h3", {}, "Members"), memberTable(f));
    if (f.heldoutImages.length) {
      out.push(el("h3", {}, "Held-out images (first of each member, per source)"),
               el("div", {class: "strip", id: "heldout-images"}, f.heldoutImages.map((h) =>
                 el("span", {class: "thumb"}, el("img", {src: h.src, alt: `${h.source} ${f.layer}:${h.unit}`}), `${h.source} ${h.unit}`))));
    }
    if (f.circuits.length) {
      out.push(el("h3", {}, "Circuits"), el("ul", {id: "family-circuits"}, f.circuits.map((c) =>
        el("li", {}, c.role === "in" ? "enters: " : "leaves: ", link("circuit", c.key, c.title)))));
    }
    out.push(exportedLinks(f.exported));
    return out;
  }

  function familyPlots(f) {
    const p = f.plots, grid = DATA.grids[p.grid];
    const tuning = rows(p.tuning, f.n, p.steps);
    const sorted = p.order.map((i) => tuning[i]);
    const figs = [figure(`tuning curves (members × ${grid.axis}, normalised per row; rows sorted by preferred parameter)`,
      heatmap(sorted, {id: "tuning-heatmap", rowLabels: p.order.map((i) => String(f.units[i])), colTicks: grid.tuningTicks,
                       xLabel: grid.axis + (grid.log ? " (log-spaced grid)" : ""), yLabel: `${f.layer} unit`,
                       onRow: (i) => href("unit", unitKey(f, f.units[p.order[i]]))}))];
    if (grid.tuningDeg && p.colours) {
      figs.push(figure("polar tuning; angle: " + grid.axis + "; radius: normalised response",
                       polar(tuning, grid.tuningDeg, p.colours, f.units, "polar-tuning")));
    }
    const matrix = rows(p.matrix, f.n, p.matrixSteps);
    figs.push(figure(`f(g·x) = P_g f(x)? responses to the best stimulus x of unit ${p.matrixUnit} under each step g` +
                     (p.peaks.length ? "; ○ expected peaks" : "") + " (family order, normalised per row)",
      heatmap(matrix, {id: "equivariance-matrix", rowLabels: f.units.map(String), colTicks: grid.ticks, marks: p.peaks,
                       blocks: grid.hueBlocks, xLabel: "g: " + grid.axis, yLabel: `${f.layer} unit (family order)`})));
    const out = [el("div", {class: "plots"}, figs)];
    if (p.stimuli) {
      out.push(el("h3", {}, "Best stimulus of each member at its preferred parameter"),
               el("div", {class: "strip", id: "stimulus-strip"}, p.stimuli.map((s) =>
                 el("a", {class: "thumb", href: href("unit", unitKey(f, s.unit))}, el("span", {}, s.label),
                    el("img", {src: s.src, alt: `${f.layer}:${s.unit}`}), String(s.unit)))));
    } else {
      out.push(el("p", {class: "note"}, "No stimulus strip: these responses carry no stimuli."));
    }
    return out;
  }

  function unitKey(f, u) {
    return `unit:${f.layer}|${f.transform}|${u}`;
  }

  function memberTable(f) {
    const hasUnits = (u) => DATA.units[unitKey(f, u)] !== undefined;
    return el("div", {},
      el("table", {id: "member-table"}, el("tr", {}, el("th", {}, "unit"), el("th", {}, "preferred")),
         f.units.map((u, i) => el("tr", {}, el("td", {}, hasUnits(u) ? link("unit", unitKey(f, u), `${f.layer}:${u}`) : `${f.layer}:${u}`),
                                  el("td", {}, f.preferred[i])))),
      el("p", {}, "holes: " + (f.holes.length ? f.holes.join(", ") : f.period === null ? "n/a (no period)" : "none")));
  }

  function exportedLinks(list) {
    if (!list || !list.length) return null;
    return [el("h3", {}, "Figure files"), el("ul", {class: "exported"}, list.map((x) =>
      el("li", {}, x.title + ": ", Object.entries(x.files).map(([fmtName, path], i) => [i ? ", " : "", el("a", {href: path}, fmtName)]))))];
  }

  // ------------------------------------------------------------------ unit and circuit views

  function unitView(key) {
    const u = DATA.units[key];
    if (!u) return notFound("unit", key);
    const grid = DATA.grids[u.grid];
    const data = rows(u.values, u.variants, u.steps);
    return [
      el("h2", {id: "view-title", "data-key": key}, `${u.layer}:${u.unit} · ${u.transform}`),
      el("p", {}, "member of ", u.families.map((k, i) => [i ? ", " : "", link("family", k, FAMILIES.get(k).title)])),
      el("div", {class: "plots"},
        figure(`responses to each stimulus variant over the ${grid.axis} (one scale: ${fmt(u.lo)} … ${fmt(u.hi)})`,
               heatmap(data, {id: "unit-heatmap", rowLabels: grid.variants, colTicks: grid.ticks, xLabel: grid.axis,
                              yLabel: "stimulus variant", marks: []})),
        figure(`tuning: the best variant (${grid.variants[u.best]}) in red, the others grey`,
               lines(data, {id: "unit-lines", highlight: u.best, colTicks: grid.ticks, xLabel: grid.axis,
                            lo: fmt(u.lo, 2), hi: fmt(u.hi, 2)}))),
    ];
  }

  function circuitView(key) {
    const c = CIRCUITS.get(key);
    if (!c) return notFound("circuit", key);
    const fam = (k, role) => el("li", {}, role + ": ", k ? link("family", k, FAMILIES.get(k).title, {class: role + "-family"})
                                                         : "no family of the scan has exactly these units");
    return [
      el("h2", {id: "view-title", "data-key": key}, c.title),
      el("div", {class: "card"}, fieldList(c.fields)),
      DATA.kind === "scan" ? el("ul", {id: "circuit-families"}, fam(c.sourceFamily, "source"), fam(c.targetFamily, "target")) : null,
      el("h3", {}, "Expanded weights"),
      figure(`target units (rows) × source units (columns), each cell the ${c.weights.shape[2]}×${c.weights.shape[3]} kernel ` +
             `from source to target; one colour scale, ±${fmt(c.weights.vmax)}: red excitation, blue inhibition, white 0`,
             weightGrid(c)),
      exportedLinks(c.exported),
    ];
  }

  function notFound(view, key) {
    return [el("h2", {id: "view-title"}, `No ${view} ${key} in this report`), el("p", {}, link("overview", undefined, "back to the start"))];
  }

  // ------------------------------------------------------------------ routing

  function parseHash() {
    const h = location.hash.slice(1);
    const i = h.indexOf("=");
    if (i < 0) return {view: h, key: undefined};
    return {view: h.slice(0, i), key: decodeURIComponent(h.slice(i + 1))};
  }

  function defaultView() {
    if (DATA.kind === "family") return {view: "family", key: DATA.families[0].key};
    if (DATA.kind === "circuit") return {view: "circuit", key: DATA.circuits[0].key};
    return {view: "overview"};
  }

  const VIEWS = {overview: overview, families: familiesView, family: familyView, unit: unitView, circuit: circuitView};

  /** The view to show for a parsed hash: the default one for an unknown view, a keyless view that needs a
   * key, or the scan views of a lone family or circuit page. */
  function resolve(r) {
    if (!VIEWS[r.view]) return defaultView();
    if (r.view === "overview" || r.view === "families") return DATA.kind === "scan" ? r : defaultView();
    return r.key === undefined ? defaultView() : r;
  }

  function route() {
    render(resolve(parseHash()));
  }

  function render(r) {
    const main = document.getElementById("view");
    main.replaceChildren();
    append(main, [VIEWS[r.view](r.key)]);
    main.dataset.view = r.view;
    main.dataset.key = r.key || "";
    document.title = document.getElementById("view-title").textContent + " · equifind";
  }

  function nav() {
    const bar = document.getElementById("nav");
    if (DATA.kind === "scan") {
      append(bar, [link("overview", undefined, "Overview"), link("families", undefined, `Families (${DATA.families.length})`)]);
    }
  }

  // For tests and the console: show() navigates (a new history entry), render() draws a view without navigating
  // (browsers throttle hundreds of navigations in a row).
  window.equifind = {
    data: DATA, route: route,
    show: (view, key) => { location.hash = href(view, key).slice(1); route(); },
    render: (view, key) => render(resolve({view: view, key: key})),
  };
  nav();
  window.addEventListener("hashchange", route);
  route();
})();
