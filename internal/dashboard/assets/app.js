// hasses dashboard: draws the samples the server pushes on /dashboard/events.
// Plain DOM and SVG, no dependencies. The feed sends "init" (settings and the
// whole window) on every (re)connection, then one "sample" per interval.
"use strict";

// Script errors are kept for the browser test (and the curious).
window.dashboardErrors = [];
window.addEventListener("error", (e) => window.dashboardErrors.push(String(e.message)));

const SVG = "http://www.w3.org/2000/svg";
const C = {
  blue: "#2563eb", slate: "#94a3b8", green: "#16a34a", violet: "#7c3aed",
  red: "#dc2626", orange: "#ea8a0c", teal: "#0d9488", pink: "#db2777",
};

const state = { interval: 1000, window: 300000, reasons: [], samples: [], top: null, seq: 0 };
const $ = (id) => document.getElementById(id);

// ---- formatting

// num is for axes and legends: short (1.5k, 12M).
function num(v) {
  if (v == null || isNaN(v)) return "–";
  const a = Math.abs(v);
  const short = (x, unit) => (x >= 100 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, "")) + unit;
  if (a >= 1e9) return short(v / 1e9, "G");
  if (a >= 1e6) return short(v / 1e6, "M");
  if (a >= 1e3) return short(v / 1e3, "k");
  return Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, "");
}

// full is for tiles and tables: every digit up to a million.
function full(v) {
  if (v == null || isNaN(v)) return "–";
  if (Math.abs(v) >= 1e6) return num(v);
  return v.toLocaleString("en-US", { maximumFractionDigits: 1 });
}

function bytes(v) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)) + " " + units[i];
}

function minutes(ms) {
  const m = Math.round(ms / 60000);
  return m >= 1 ? m + " min" : Math.round(ms / 1000) + " s";
}

function setText(id, text, raw) {
  const el = $(id);
  el.textContent = text;
  if (raw !== undefined) el.dataset.value = String(raw);
}

// ---- charts

// scale picks the y axis: a 1, 2 or 5 step and a top with some headroom,
// whole numbers for counts.
function scale(top, whole) {
  if (!(top > 0)) return { step: 1, max: 1 };
  const raw = Math.max(top, whole ? 1 : 0.1) / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = 10 * p;
  for (const m of [1, 2, 5]) if (raw <= m * p) { step = m * p; break; }
  if (whole) step = Math.max(1, Math.round(step));
  return { step, max: step * Math.max(1, Math.ceil((top * 1.1) / step)) };
}

// span is the time the x axis covers: the data held, rounded up to a
// minute, within the window (a fresh server's charts are not a flat line
// pressed against the right edge).
function span(samples) {
  if (!samples.length) return state.window;
  const held = samples[samples.length - 1].t - samples[0].t + state.interval;
  return Math.min(state.window, Math.max(60000, Math.ceil(held / 60000) * 60000));
}

function ago(ms) {
  if (ms === 0) return "now";
  return ms % 60000 === 0 ? "−" + ms / 60000 + " min" : "−" + Math.round(ms / 1000) + " s";
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}

// chart draws series [{label, color, get}] up to the newest sample. kind
// "line" draws lines over a light area; "bars" stacks the series. whole: the
// values are counts.
function chart(svg, series, kind, fmt, whole) {
  const W = Math.max(svg.clientWidth, 200), H = Math.max(svg.clientHeight, 100);
  const padL = 46, padR = 8, padT = 8, padB = 20;
  const iw = W - padL - padR, ih = H - padT - padB;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();

  const samples = state.samples;
  const now = samples.length ? samples[samples.length - 1].t : Date.now();
  const dom = span(samples);
  const t0 = now - dom;
  const x = (t) => padL + ((t - t0) / dom) * iw;

  let top = 0;
  for (const s of samples) {
    if (kind === "bars") {
      let sum = 0;
      for (const se of series) sum += se.get(s);
      top = Math.max(top, sum);
    } else {
      for (const se of series) top = Math.max(top, se.get(s));
    }
  }
  const sc = scale(top, whole);
  const ymax = sc.max;
  const y = (v) => padT + ih - (v / ymax) * ih;

  for (let v = 0; v <= ymax + sc.step / 2; v += sc.step) {
    const yy = Math.round(y(v)) + 0.5;
    svg.append(el("line", { class: v === 0 ? "axis" : "grid", x1: padL, x2: W - padR, y1: yy, y2: yy }));
    svg.append(el("text", { x: padL - 6, y: yy + 4, "text-anchor": "end" }, fmt(Math.round(v * 1000) / 1000)));
  }
  // Time labels a readable distance apart.
  const steps = [10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000];
  const stepMs = steps.find((st) => dom / st <= iw / 70) || steps[steps.length - 1];
  for (let back = 0; back <= dom; back += stepMs) {
    svg.append(el("text", { x: x(now - back), y: H - 5, "text-anchor": back === 0 ? "end" : back === dom ? "start" : "middle" }, ago(back)));
  }
  if (!samples.length) {
    svg.append(el("text", { class: "empty", x: padL + iw / 2, y: padT + ih / 2, "text-anchor": "middle" }, "waiting for data…"));
    return;
  }

  // A gap longer than a few intervals (a restart, a lost connection) breaks the line.
  const gap = state.interval * 2.5;
  if (kind === "bars") {
    const bw = Math.max(1, (iw / (dom / state.interval)) - 0.6);
    for (const s of samples) {
      let acc = 0;
      for (const se of series) {
        const v = se.get(s);
        if (v <= 0) continue;
        const y1 = y(acc + v), y0 = y(acc);
        svg.append(el("rect", { x: x(s.t) - bw, y: y1, width: bw, height: Math.max(y0 - y1, 1), fill: se.color }));
        acc += v;
      }
    }
    return;
  }
  for (const se of series) {
    let line = "", area = "", start = null, prevT = null, lastX = 0;
    const closeArea = () => {
      if (start !== null) area += `L${lastX},${y(0)}L${start},${y(0)}Z`;
    };
    for (const s of samples) {
      const xx = x(s.t), yy = y(se.get(s));
      if (xx < padL - 1) { prevT = s.t; continue; }
      if (prevT === null || s.t - prevT > gap || start === null) {
        closeArea();
        line += `M${xx},${yy}`;
        area += `M${xx},${y(0)}L${xx},${yy}`;
        start = xx;
      } else {
        line += `L${xx},${yy}`;
        area += `L${xx},${yy}`;
      }
      lastX = xx;
      prevT = s.t;
    }
    closeArea();
    svg.append(el("path", { d: area, fill: se.color, "fill-opacity": 0.08, stroke: "none" }));
    svg.append(el("path", { d: line, fill: "none", stroke: se.color, "stroke-width": 1.8, "stroke-linejoin": "round" }));
  }
}

function legend(id, items) {
  const box = $(id);
  box.replaceChildren();
  for (const [label, color, value] of items) {
    const span = document.createElement("span");
    const sw = document.createElement("i");
    sw.className = "sw";
    sw.style.background = color;
    const b = document.createElement("b");
    b.textContent = value;
    span.append(sw, label + " ", b);
    box.append(span);
  }
}

// ---- tables

function rows(tbody, items, cell, emptyText) {
  tbody.replaceChildren();
  if (!items.length) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 2;
    td.className = "empty";
    td.textContent = emptyText;
    tr.append(td);
    tbody.append(tr);
    return;
  }
  const maxV = Math.max(...items.map((it) => it.value), 1);
  for (const it of items) {
    const tr = document.createElement("tr");
    if (it.value === 0) tr.className = "zero";
    const name = document.createElement("td"), val = document.createElement("td");
    name.className = cell;
    name.textContent = it.name;
    name.title = it.name;
    val.className = "num";
    val.textContent = it.text;
    const meter = document.createElement("div");
    meter.className = "meter";
    meter.style.width = ((it.value / maxV) * 100).toFixed(1) + "%";
    name.append(meter);
    tr.append(name, val);
    tbody.append(tr);
  }
}

// ---- rendering

const refusedSum = (s) => (s.refused || []).reduce((a, b) => a + b, 0);

function render() {
  const ss = state.samples, last = ss[ss.length - 1];
  if (last) {
    setText("streams", full(last.streams), last.streams);
    setText("streams-note", full(last.conns) + " connections open");
    setText("in-rate", full(last.in), last.in);
    setText("out-rate", full(last.out), last.out);
    setText("topics", full(last.topics), last.topics);
    setText("topics-note", full(last.subs) + " subscribers");
    setText("history", full(last.histEvents), last.histEvents);
    setText("history-note", bytes(last.histBytes) + " kept for replay");
    let refused = 0, lagged = 0;
    for (const s of ss) { refused += refusedSum(s); lagged += s.lagged; }
    setText("drops", full(refused) + " · " + full(lagged), refused + lagged);
    setText("drops-note", "last " + minutes(state.window));
    $("updated").textContent = "updated " + new Date(last.t).toLocaleTimeString("en-GB");
  }
  const v = (k) => (last ? last[k] : 0);

  chart($("c-streams"), [
    { label: "connections", color: C.slate, get: (s) => s.conns },
    { label: "streams", color: C.blue, get: (s) => s.streams },
  ], "line", num, true);
  legend("l-streams", [["streams", C.blue, num(v("streams"))], ["connections", C.slate, num(v("conns"))]]);

  chart($("c-in"), [{ label: "in", color: C.green, get: (s) => s.in }], "line", num);
  legend("l-in", [["published", C.green, num(v("in")) + "/s"]]);

  chart($("c-out"), [{ label: "out", color: C.violet, get: (s) => s.out }], "line", num);
  legend("l-out", [["deliveries", C.violet, num(v("out")) + "/s"]]);

  chart($("c-drops"), [
    { label: "refused", color: C.red, get: refusedSum },
    { label: "lagged", color: C.orange, get: (s) => s.lagged },
  ], "bars", num, true);
  legend("l-drops", [["refused", C.red, num(last ? refusedSum(last) : 0)], ["lagged", C.orange, num(v("lagged"))]]);

  chart($("c-history"), [{ label: "events", color: C.teal, get: (s) => s.histEvents }], "line", num, true);
  legend("l-history", [["events", C.teal, num(v("histEvents"))], ["size", "transparent", bytes(v("histBytes"))]]);

  chart($("c-topics"), [
    { label: "subscribers", color: C.pink, get: (s) => s.subs },
    { label: "tokens", color: C.blue, get: (s) => s.topics },
  ], "line", num, true);
  legend("l-topics", [["tokens", C.blue, num(v("topics"))], ["subscribers", C.pink, num(v("subs"))]]);

  const top = state.top || { bySubs: [], byRate: [], watched: false };
  const waiting = top.watched ? null : "waiting for the next sample…";
  rows($("top-subs"), (top.bySubs || []).map((r) => ({ name: r.token, value: r.subs, text: full(r.subs) })),
    "tok", waiting || "no token has subscribers");
  rows($("top-rate"), (top.byRate || []).map((r) => ({ name: r.token, value: r.rate, text: full(r.rate) })),
    "tok", waiting || "no events in the last second");

  const totals = state.reasons.map((name, i) => ({ name, value: 0 }));
  let lagged = 0;
  for (const s of ss) {
    (s.refused || []).forEach((n, i) => { if (totals[i]) totals[i].value += n; });
    lagged += s.lagged;
  }
  totals.push({ name: "slow client (lagged)", value: lagged });
  totals.sort((a, b) => b.value - a.value);
  rows($("reasons"), totals.map((t) => ({ name: t.name, value: t.value, text: full(t.value) })), "", "none");
  $("window-head").textContent = "last " + minutes(state.window);
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}
window.addEventListener("resize", schedule);

// ---- the feed

function status(cls, text) {
  const p = $("status");
  p.className = "pill " + cls;
  p.textContent = text;
}

function connect() {
  const es = new EventSource("dashboard/events");
  es.addEventListener("open", () => status("live", "live"));
  es.addEventListener("init", (e) => {
    const m = JSON.parse(e.data);
    state.interval = m.interval;
    state.window = m.window;
    state.reasons = m.reasons || [];
    state.samples = m.samples || [];
    state.top = m.top;
    state.seq = m.seq;
    $("version").textContent = m.version ? "v" + m.version : "";
    $("logout").hidden = !m.login;
    status("live", "live");
    schedule();
  });
  es.addEventListener("sample", (e) => {
    const m = JSON.parse(e.data);
    if (m.seq <= state.seq) return;
    state.seq = m.seq;
    state.samples.push(m.sample);
    const keep = Math.ceil(state.window / state.interval);
    if (state.samples.length > keep) state.samples.splice(0, state.samples.length - keep);
    if (m.top) state.top = m.top; // only the newest sample carries the tables
    status("live", "live");
    schedule();
  });
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused for good (a 401 once the login expired, a 503): start over,
      // which shows the login form if that is what is missing.
      status("down", "disconnected");
      setTimeout(() => location.reload(), 5000);
    } else {
      status("wait", "reconnecting");
    }
  });
  window.dashboardFeed = es; // for tests and the curious
}

schedule();
connect();
