// ticklake's dashboard page: no library, no inline script (the CSP forbids both). Every value from the feed goes
// into the page as text (textContent) or as a number in an SVG attribute, never as HTML.
"use strict";

const POINTS = 300;
const state = { symbols: new Map(), rows: [], partitions: {}, lake: null, filter: "" };

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function num(x, digits) {
  return typeof x === "number" && isFinite(x) ? x.toFixed(digits === undefined ? 2 : digits) : "–";
}

function when(ms) {
  return typeof ms === "number" ? new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z") : "–";
}

function ago(ms) {
  if (typeof ms !== "number") return "–";
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

function mergeSymbol(s) {
  const have = state.symbols.get(s.symbol) || { symbol: s.symbol, points: [] };
  have.kind = s.kind;
  have.last = s.last;
  have.change = s.change;
  const byTime = new Map(have.points.map((p) => [p[0], p]));
  for (const p of s.points || []) byTime.set(p[0], p);
  have.points = Array.from(byTime.values()).sort((a, b) => a[0] - b[0]).slice(-POINTS);
  state.symbols.set(s.symbol, have);
}

function chart(sym) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 200 70");
  svg.setAttribute("preserveAspectRatio", "none");
  const pts = sym.points;
  if (pts.length === 0) return svg;
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) { lo = Math.min(lo, p[3]); hi = Math.max(hi, p[2]); }
  if (hi === lo) { hi += 1; lo -= 1; }
  const y = (v) => 66 - ((v - lo) / (hi - lo)) * 62;
  const step = 200 / Math.max(pts.length, 1);
  if (sym.kind === "candles") {
    pts.forEach((p, i) => {
      const x = i * step + step / 2;
      const cls = p[4] >= p[1] ? "rise" : "fall";
      const wick = document.createElementNS(SVG, "line");
      wick.setAttribute("x1", x); wick.setAttribute("x2", x);
      wick.setAttribute("y1", y(p[2])); wick.setAttribute("y2", y(p[3]));
      wick.setAttribute("class", cls);
      const body = document.createElementNS(SVG, "rect");
      body.setAttribute("x", x - step * 0.35); body.setAttribute("width", Math.max(step * 0.7, 0.5));
      body.setAttribute("y", Math.min(y(p[1]), y(p[4]))); body.setAttribute("height", Math.max(Math.abs(y(p[1]) - y(p[4])), 0.5));
      body.setAttribute("class", cls);
      svg.append(wick, body);
    });
  } else {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.map((p, i) => (i * step).toFixed(1) + "," + y(p[4]).toFixed(1)).join(" "));
    svg.append(line);
  }
  return svg;
}

function shown(symbol) {
  return state.filter === "" || String(symbol).toLowerCase().includes(state.filter);
}

function renderSymbols() {
  const cards = [];
  for (const sym of Array.from(state.symbols.values()).sort((a, b) => (a.symbol < b.symbol ? -1 : 1))) {
    if (!shown(sym.symbol)) continue;
    const card = el("div", null, "card");
    card.dataset.symbol = sym.symbol;
    const dir = sym.change > 0 ? "up" : sym.change < 0 ? "down" : "";
    const sign = sym.change > 0 ? "+" : "";
    card.append(el("div", sym.symbol, "name"), el("span", num(sym.last), "last"), el("span", " " + sign + num(sym.change), dir), chart(sym));
    cards.push(card);
  }
  $("symbols").replaceChildren(...cards);
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
    return tr;
  }));
}

function renderFeed() {
  renderSymbols();
  const parts = Object.entries(state.partitions).sort((a, b) => a[0] - b[0]);
  fill($("partitions").tBodies[0], parts.map(([p, c]) => [p, c.end, c.records, num(c.rate, 1), c.malformed]));
  const rows = state.rows.filter((r) => shown(r.symbol)).slice().reverse();
  fill($("rows").tBodies[0], rows.map((r) => [when(r.time), r.symbol, num(r.price), r.partition + "/" + r.offset, el("td", JSON.stringify(r.fields), "record")]));
  document.body.dataset.records = parts.reduce((n, [, c]) => n + c.records, 0);
  document.body.dataset.malformed = parts.reduce((n, [, c]) => n + c.malformed, 0);
}

function renderLake() {
  const l = state.lake;
  const summary = $("lake-summary");
  if (!l) return;
  if (l.error) {
    summary.replaceChildren(el("span", "reading the lake failed: " + l.error, "error"));
    return;
  }
  const fresh = typeof l.freshness_ms === "number"
    ? "newest event " + when(l.newest_event) + " (" + ago(l.freshness_ms) + " ago)"
    : "last commit " + ago(l.last_commit_ms) + " ago";
  summary.replaceChildren(el("span", l.lake + ": " + l.files + " files, " + l.rows + " rows; " + fresh));
  const small = l.small_files === null
    ? Math.round(l.rows / Math.max(l.files, 1)) + " rows per file on average, " + l.snapshots + " snapshots"
    : l.small_files + " small files (under " + l.small_file_rows + " rows)";
  summary.append(el("br"), el("span", small));
  if (l.compaction_helps) summary.append(el("span", ": compaction would help (" + (l.compaction_hint || "ticklake lake compact") + ")", "hint"));
  fill($("checkpoints").tBodies[0], l.partitions.map((p) => {
    const cp = el("td", p.checkpoint);
    cp.dataset.partition = p.partition;
    cp.className = "checkpoint";
    return [String(p.partition), cp, p.end === null ? "–" : p.end, p.lag === null ? "–" : p.lag];
  }));
  const clock = (ms) => (typeof ms === "number" ? new Date(ms).toISOString().slice(11, 19) : "–");
  fill($("commits").tBodies[0], l.commits.map((c) => [clock(c.time), c.what, c.rows === null ? "–" : c.rows, c.files === null ? "–" : c.files]));
  fill($("filling").tBodies[0], l.filling_today.map((f) => [f.path || "(no hive partitioning)", f.files, f.rows]));
  document.body.dataset.checkpoints = l.partitions.reduce((n, p) => n + p.checkpoint, 0);
}

function renderMetrics(m) {
  if (!m) return;
  const rows = [];
  for (const src of m.sources) {
    const head = el("td", src.error ? src.url + ": " + src.error : src.url, src.error ? "error" : "source");
    head.colSpan = 3;
    rows.push([head]);
    for (const r of src.metrics || []) rows.push([r.name, num(r.value, 0), r.rate === null ? "–" : num(r.rate, 1)]);
  }
  fill($("metrics").tBodies[0], rows);
}

function apply(update, fresh) {
  if (fresh) {
    state.symbols.clear();
    state.rows = [];
  }
  for (const s of update.symbols || []) mergeSymbol(s);
  state.rows = state.rows.concat(update.rows || []).slice(-20);
  if (update.partitions) state.partitions = update.partitions;
  if (update.topic) $("topic").textContent = update.topic;
  renderFeed();
  if (fresh && update.lake) { state.lake = update.lake; renderLake(); }
  if (fresh && update.metrics) renderMetrics(update.metrics);
}

function connect() {
  const status = $("status");
  const events = new EventSource("/api/events");
  events.addEventListener("snapshot", (e) => apply(JSON.parse(e.data), true));
  events.addEventListener("update", (e) => apply(JSON.parse(e.data), false));
  events.addEventListener("lake", (e) => { state.lake = JSON.parse(e.data); renderLake(); });
  events.addEventListener("metrics", (e) => renderMetrics(JSON.parse(e.data)));
  events.onopen = () => { status.textContent = "live"; status.dataset.state = "live"; };
  events.onerror = () => { status.textContent = "reconnecting…"; status.dataset.state = "down"; };
}

document.addEventListener("DOMContentLoaded", () => {
  $("filter").addEventListener("input", (e) => { state.filter = e.target.value.trim().toLowerCase(); renderFeed(); });
  connect();
});
