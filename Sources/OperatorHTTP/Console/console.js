// The fulfillment console: plain JavaScript, no framework, no build step.
// Everything that comes from an order or a record is shown with textContent, never parsed
// as markup; the server's Content Security Policy allows no inline script besides.
"use strict";

const main = document.getElementById("main");
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("fulfillment-token") || "";
tokenInput.addEventListener("input", () => sessionStorage.setItem("fulfillment-token", tokenInput.value.trim()));

// ---- small helpers -------------------------------------------------------------------

/** An element with attributes and children (strings become text nodes, never markup). */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    // Styles through the CSSOM: the Content Security Policy refuses style attributes.
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.setAttribute("class", value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function number(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? number(value * 1000, 0) + " ms" : number(value, 2) + " s";
}

function time(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "–";
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || response.status + " " + response.statusText);
  return body;
}

/** A write: the admin token goes as a header, never a cookie, so no other site can send it. */
async function postJSON(path, payload) {
  const token = tokenInput.value.trim();
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify(payload),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || response.status + " " + response.statusText);
  return body;
}

/** A line chart of series [{name, color, points: [[t, v], ...]}] as SVG. */
function lineChart(series, { unit = "", min = 0 } = {}) {
  const width = 440, height = 160, left = 44, bottom = 18, top = 8;
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  if (all.length === 0) {
    chart.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#8792a4" }, "waiting for data"));
    return chart;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  let v1 = Math.max(...all.map((p) => p[1])), v0 = Math.min(min, ...all.map((p) => p[1]));
  if (v1 === v0) v1 = v0 + 1;
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - 6);
  const y = (v) => top + (1 - (v - v0) / (v1 - v0)) * (height - top - bottom);
  for (const tick of [v0, (v0 + v1) / 2, v1]) {
    chart.append(svg("line", { x1: left, x2: width - 6, y1: y(tick), y2: y(tick), stroke: "#eef0f3" }));
    chart.append(svg("text", { x: left - 4, y: y(tick) + 4, "text-anchor": "end", "font-size": 10, fill: "#8792a4" }, number(tick, tick < 10 && unit !== "" ? 2 : 0) + unit));
  }
  for (const s of series) {
    const points = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (points.length === 0) continue;
    chart.append(svg("polyline", { points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "), fill: "none", stroke: s.color, "stroke-width": 1.8 }));
  }
  return chart;
}

function sparkline(values) {
  const width = 120, height = 26;
  const chart = svg("svg", { class: "spark", viewBox: `0 0 ${width} ${height}` });
  if (values.length < 2) return chart;
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i / (values.length - 1)) * (width - 2) + 1},${height - 2 - (v / max) * (height - 4)}`).join(" ");
  chart.append(svg("polyline", { points, fill: "none", stroke: "#2f6fed", "stroke-width": 1.5 }));
  return chart;
}

// ---- the live stream and the alert banner -----------------------------------------------

let stream = null;
const live = document.getElementById("live");

/** One EventSource per page: frames go to `onFrame` until the page changes. */
function listen(view, onFrame) {
  if (stream) stream.close();
  stream = new EventSource("/api/events?view=" + encodeURIComponent(view));
  stream.onmessage = (event) => {
    live.classList.add("on");
    const frame = JSON.parse(event.data);
    showAlerts(frame.alerts || []);
    onFrame(frame);
  };
  stream.onerror = () => live.classList.remove("on");
}

function showAlerts(alerts) {
  const banner = document.getElementById("alerts");
  const firing = alerts.filter((a) => a.firing_since !== null);
  banner.replaceChildren(...firing.map((a) =>
    el("div", { class: "alert" }, el("span", { class: "sev " + a.severity }, a.severity), el("b", {}, a.name), " ", a.summary)));
  banner.hidden = firing.length === 0;
}

// ---- pages ---------------------------------------------------------------------------

const pages = { overview, graph, orders, dlq, topics };

function route() {
  const [view, argument] = (location.hash.slice(1) || "overview").split("/");
  const page = pages[view] ? view : "overview";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === page);
  main.replaceChildren();
  pages[page](argument ? decodeURIComponent(argument) : undefined);
}

// Overview: live counts and charts, one stream.
function overview() {
  const history = [];
  const cards = el("div", { class: "cards" });
  const charts = el("div", { class: "charts" });
  main.append(el("h2", {}, "Orders"), cards, el("h2", {}, "Live"), charts);
  listen("overview", (frame) => {
    history.push(frame);
    if (history.length > 180) history.shift();
    const o = frame.orders;
    const parked = frame.in_flight.manual_review || 0;
    const inFlight = Object.entries(frame.in_flight).filter(([s]) => s !== "manual_review").reduce((n, [, v]) => n + v, 0);
    const card = (label, value, state, id) => el("div", { class: "card " + (state || ""), "data-figure": id }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
    cards.replaceChildren(
      card("accepted", number(o.accepted), "", "accepted"),
      card("completed", number(o.completed), "", "completed"),
      card("compensated", number(o.compensated), o.compensated > 0 ? "warn" : "", "compensated"),
      card("rejected", number(o.rejected), "", "rejected"),
      card("finished per second", number(frame.orders_per_s, 1), "", "orders-per-s"),
      card("success rate", frame.success_rate === null ? "–" : number(frame.success_rate * 100, 2) + " %", frame.success_rate !== null && frame.success_rate < 0.99 ? "warn" : "", "success-rate"),
      card("in flight", number(inFlight), "", "in-flight"),
      card("manual review", number(parked), parked > 0 ? "bad" : "", "manual-review"),
      card("stuck", frame.stuck === null ? "–" : number(frame.stuck), frame.stuck > 0 ? "warn" : "", "stuck"),
    );
    const series = (pick) => history.map((f) => [f.at, pick(f)]);
    charts.replaceChildren(
      chart("Orders finished per second", [{ name: "orders/s", color: "#2f6fed", points: series((f) => f.orders_per_s) }]),
      chart("Success rate", [{ name: "completed ÷ finished", color: "#1f9d55", points: series((f) => (f.success_rate === null ? null : f.success_rate * 100)) }], { unit: "%" }),
      chart("Latency, VIP (last 10 s)", [
        { name: "p50", color: "#8a4bd6", points: series((f) => f.latency.vip.p50) },
        { name: "p99", color: "#d33a2c", points: series((f) => f.latency.vip.p99) },
      ], { unit: " s" }),
      chart("Latency, standard (last 10 s)", [
        { name: "p50", color: "#2f6fed", points: series((f) => f.latency.standard.p50) },
        { name: "p99", color: "#d98a00", points: series((f) => f.latency.standard.p99) },
      ], { unit: " s" }),
    );
  });
}

function chart(title, series, options) {
  return el("div", { class: "chart" },
    el("div", { class: "title" }, el("span", {}, title), el("span", { class: "legend" }, series.map((s) => el("span", {}, el("i", { style: { background: s.color } }), s.name)))),
    lineChart(series, options));
}

// Saga graph: the configuration's graph model, laid out in columns, with live figures.
async function graph() {
  const holder = el("div", { class: "graph" });
  const failures = el("div");
  main.append(el("h2", {}, "Saga"), holder, failures);
  let model;
  try {
    model = await getJSON("/api/graph");
  } catch (error) {
    holder.append(el("div", { class: "notice error" }, String(error.message)));
    return;
  }
  const layout = layoutGraph(model);
  const drawing = svg("svg", { width: layout.width, height: layout.height, viewBox: `0 0 ${layout.width} ${layout.height}` });
  const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#a3acba" })));
  drawing.append(defs);
  for (const edge of model.edges) {
    const a = layout.positions[edge.from], b = layout.positions[edge.to];
    if (!a || !b) continue;
    const [x1, y1, x2, y2] = [a.x + a.w / 2, a.y + a.h / 2, b.x + b.w / 2, b.y + b.h / 2];
    const bend = Math.abs(y2 - y1) < 4 ? 0 : (x2 - x1) / 2;
    const path = svg("path", { class: "edge" + (edge.dashed ? " dashed" : ""), d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" });
    if (edge.label) path.append(svg("title", {}, edge.label));
    drawing.append(path);
  }
  const figures = {};
  const nodes = {};
  for (const node of model.nodes) {
    const p = layout.positions[node.id];
    const step = ["payment", "inventory", "shipping", "notification", "compensation"].includes(node.id) ? node.id : null;
    const group = svg("g", { class: "node" + (node.is_topic ? " topic" : "") + (step ? " worker" : ""), "data-node": node.id, transform: `translate(${p.x},${p.y})` });
    group.append(svg("rect", { width: p.w, height: p.h }));
    group.append(svg("title", {}, node.label));
    const label = node.is_topic ? node.label : node.label.split(":")[0];
    group.append(svg("text", { x: 8, y: 16, "font-weight": node.is_topic ? 400 : 650 }, label.length > 34 ? label.slice(0, 33) + "…" : label));
    if (step) {
      const text = svg("text", { class: "figures", x: 8, y: 33, "data-figures": step }, "…");
      group.append(text);
      figures[step] = text;
      group.addEventListener("click", () => showFailures(step, failures));
    }
    nodes[node.id] = group;
    drawing.append(group);
  }
  holder.append(drawing);
  const previous = {};
  listen("graph", (frame) => {
    for (const [step, f] of Object.entries(frame.steps)) {
      if (!figures[step]) continue;
      figures[step].textContent = `in flight ${number(f.in_flight)} · ${number(f.attempts_per_s, 1)}/s · retries ${number(f.retries)} · DLT ${number(f.dead_letters_pending)}`;
      const before = previous[step];
      const red = f.dead_letters_pending > 0 && before && f.dead_letters_pending > before.dead_letters_pending;
      const amber = f.failures_per_s > 0 || (before && f.retries > before.retries);
      nodes[step].classList.toggle("red", Boolean(red));
      nodes[step].classList.toggle("amber", Boolean(!red && amber));
      previous[step] = f;
    }
  });
}

/** Columns: intake, one per step, the end; compensation along the bottom, left to right. */
function layoutGraph(model) {
  const w = 200, h = 42, columnGap = 28, rowGap = 14;
  const positions = {};
  const steps = ["payment", "inventory", "shipping", "notification"];
  const stem = { payment: "payment.", inventory: "inventory.", shipping: "shipment.", notification: "notification." };
  const place = (id, column, row, top) => { positions[id] = { x: 16 + column * (w + columnGap), y: top + row * (h + rowGap), w, h }; };
  const rank = (topic) => {
    if (topic.endsWith(".priority")) return 0;
    if (topic.endsWith(".requested")) return 1;
    if (topic.includes(".retry.")) return 3 + Number(topic.split(".retry.")[1]) / 100;
    if (topic.endsWith(".dlt")) return 9;
    return 10;
  };
  const columns = [[], [], [], [], [], []];
  const bottom = [];
  for (const node of model.nodes) {
    const t = node.topic || "";
    if (node.id === "dispatcher" || /(^|\.)orders$/.test(t) || t.endsWith("orders.priority") || t.endsWith("orders.rejected")) columns[0].push(node);
    else if (steps.includes(node.id)) columns[steps.indexOf(node.id) + 1].push(node);
    else if (t.endsWith("orders.completed")) columns[5].push(node);
    else {
      const step = steps.find((s) => t.includes(stem[s] + "requested"));
      if (step) columns[steps.indexOf(step) + 1].push(node); else bottom.push(node);
    }
  }
  let tallest = 0;
  columns.forEach((list, c) => {
    list.sort((a, b) => (a.is_topic ? rank(a.topic) : 2) - (b.is_topic ? rank(b.topic) : 2));
    const intake = (n) => ((n.topic || "").endsWith("orders.priority") ? 0 : (n.topic || "").endsWith("orders") ? 1 : n.id === "dispatcher" ? 2 : 3);
    if (c === 0) list.sort((a, b) => intake(a) - intake(b));
    list.forEach((node, i) => place(node.id, c, i, 16));
    tallest = Math.max(tallest, list.length);
  });
  // Compensation: driver and watchdog, the request, the worker over its retry tiers, then the ends.
  const top = 40 + tallest * (h + rowGap);
  const slot = (node) => {
    const t = node.topic || "";
    if (node.id === "compensation_driver") return [0, 0];
    if (node.id === "watchdog") return [0, 1];
    if (t.endsWith("compensation.requested")) return [1, 0];
    if (node.id === "compensation") return [2, 0];
    if (t.includes("compensation.requested.retry.")) return [2, Number(t.split(".retry.")[1])];
    if (t.endsWith("orders.compensated")) return [3, 0];
    if (t.endsWith("compensation.requested.dlt")) return [4, 0];
    if (t.endsWith("orders.manual-review")) return [5, 0];
    return [5, 1 + bottom.indexOf(node)];
  };
  let deepest = 0;
  for (const node of bottom) {
    const [c, r] = slot(node);
    place(node.id, c, r, top);
    deepest = Math.max(deepest, r + 1);
  }
  return { positions, width: 32 + 6 * (w + columnGap), height: top + deepest * (h + rowGap) + 16 };
}

async function showFailures(step, holder) {
  holder.replaceChildren(el("h2", {}, "Recent failures: " + step));
  try {
    const page = await getJSON("/api/failures?step=" + encodeURIComponent(step) + "&limit=20");
    if (page.failures.length === 0) { holder.append(el("div", { class: "notice" }, "No failures on record for " + step + ".")); return; }
    holder.append(el("table", {},
      el("tr", {}, el("th", {}, "failed at"), el("th", {}, "order"), el("th", {}, "attempt"), el("th", {}, "error"), el("th", {}, "where")),
      page.failures.map((f) => el("tr", { class: "clickable", onclick: () => { location.hash = "orders/" + encodeURIComponent(f.order_id); } },
        el("td", { class: "mono" }, time(f.failed_at)), el("td", { class: "mono" }, f.order_id), el("td", { class: "num" }, f.attempt || "–"),
        el("td", {}, el("b", {}, f.error_class || "?"), " ", f.error_message || ""), el("td", { class: "mono" }, `${f.topic}/${f.partition}/${f.offset}`)))));
  } catch (error) {
    holder.append(el("div", { class: "notice error" }, String(error.message)));
  }
}

// Orders: search, one order's timeline, and the lists of open orders.
function orders(id) {
  const input = el("input", { type: "search", placeholder: "order id, e.g. o-1001", value: id || "", id: "order-search" });
  const detail = el("div", { id: "order-detail" });
  const lists = el("div", { class: "split" });
  const go = () => { if (input.value.trim()) location.hash = "orders/" + encodeURIComponent(input.value.trim()); };
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") go(); });
  main.append(el("h2", {}, "Find an order"), el("div", { class: "toolbar" }, input, el("button", { onclick: go }, "Show")), detail, lists);
  if (id) showOrder(id, detail);
  for (const [state, title] of [["in_flight", "In flight"], ["stuck", "Stuck past their budget"], ["manual_review", "In manual review"]]) {
    const box = el("div");
    lists.append(box);
    orderList(state, title, box, null);
  }
  listen("orders", () => {});
}

async function orderList(state, title, box, after) {
  box.replaceChildren(el("h2", {}, title));
  try {
    const page = await getJSON(`/api/orders?state=${state}&limit=20` + (after ? "&after=" + encodeURIComponent(after) : ""));
    if (page.orders.length === 0) { box.append(el("div", { class: "notice" }, "None.")); return; }
    box.append(el("table", { "data-list": state },
      el("tr", {}, el("th", {}, "order"), el("th", {}, "state"), el("th", {}, "lane"), el("th", {}, "since")),
      page.orders.map((o) => el("tr", { class: "clickable", onclick: () => { location.hash = "orders/" + encodeURIComponent(o.order_id); } },
        el("td", { class: "mono" }, o.order_id), el("td", {}, el("span", { class: "pill " + o.state }, o.state)),
        el("td", {}, el("span", { class: "pill " + o.priority }, o.priority)), el("td", { class: "mono" }, time(o.updated_at))))));
    if (page.next) box.append(el("div", { class: "toolbar" }, el("button", { class: "secondary", onclick: () => orderList(state, title, box, page.next) }, "Next page")));
  } catch (error) {
    box.append(el("div", { class: "notice error" }, String(error.message)));
  }
}

async function showOrder(id, holder) {
  holder.replaceChildren(el("div", { class: "muted" }, "loading " + id + " …"));
  let report;
  try {
    report = await getJSON("/api/orders/" + encodeURIComponent(id));
  } catch (error) {
    holder.replaceChildren(el("div", { class: "notice error" }, String(error.message)));
    return;
  }
  const o = report.order;
  const rows = [];
  if (o) {
    rows.push(el("div", { class: "cards" },
      el("div", { class: "card" }, el("div", { class: "label" }, "state"), el("div", { class: "value" }, el("span", { class: "pill " + o.state, "data-state": o.state }, o.state))),
      el("div", { class: "card" }, el("div", { class: "label" }, "amount"), el("div", { class: "value" }, number(o.amount_cents / 100, 2))),
      el("div", { class: "card" }, el("div", { class: "label" }, "lane"), el("div", { class: "value" }, o.priority)),
      el("div", { class: "card" }, el("div", { class: "label" }, "took"), el("div", { class: "value" }, o.finished_at ? seconds((o.finished_at - o.created_at) / 1000) : "running")),
    ));
    if (o.error_class) {
      const recovered = o.state === "completed";
      rows.push(el("div", { class: recovered ? "notice" : "notice error" }, recovered ? "recovered from " : "last error ", el("b", {}, o.error_class), ": ", o.error_message || ""));
    }
  }
  for (const r of report.rejections) rows.push(el("div", { class: "notice error" }, "rejected: " + r));
  const history = report.history;
  const start = history.length ? history[0].at : 0;
  const end = history.length ? history[history.length - 1].at : 0;
  const span = Math.max(1, end - start);
  rows.push(el("h2", {}, "Timeline of " + id));
  rows.push(el("table", { id: "timeline" },
    el("tr", {}, el("th", {}, "#"), el("th", {}, "at (+s)"), el("th", {}, "event"), el("th", {}, "step"), el("th", { class: "num" }, "attempt"),
      el("th", {}, "topic/partition/offset"), el("th", {}, "duration"), el("th", {}, "error")),
    history.map((h, i) => {
      const next = history[i + 1] ? history[i + 1].at : h.at;
      const failed = h.event.includes("dead_lettered");
      const retry = h.event.includes("retry");
      return el("tr", { "data-event": h.event },
        el("td", { class: "num" }, i + 1), el("td", { class: "num" }, number((h.at - start) / 1000, 3)), el("td", {}, h.event), el("td", {}, h.step || ""),
        el("td", { class: "num" }, h.attempt === null ? "" : h.attempt), el("td", { class: "mono" }, `${h.topic}/${h.partition}/${h.offset}`),
        el("td", { style: { width: "160px" } }, el("div", { class: "bar" + (failed ? " failed" : retry ? " retry" : ""), style: { width: Math.max(2, ((next - h.at) / span) * 150) + "px" }, title: (next - h.at) + " ms" })),
        el("td", {}, h.error_class ? el("span", {}, el("b", {}, h.error_class), " ", h.error_message || "") : ""));
    })));
  try {
    const body = await getJSON("/api/orders/" + encodeURIComponent(id) + "/body");
    rows.push(el("h2", {}, "Order as submitted"), el("div", { class: "payload mono", id: "order-body" }, JSON.stringify(body, null, 2)));
  } catch (_) { /* only rejected: no stored body */ }
  holder.replaceChildren(...rows);
}

// Dead letters: per topic, browse, redrive with a preview and a confirmation.
function dlq(topic) {
  const summary = el("div");
  const browser = el("div", { id: "dlq-browser" });
  main.append(el("h2", {}, "Dead-letter topics"), summary, browser);
  listen("dlq", (frame) => {
    const topics = frame.dead_letters || [];
    summary.replaceChildren(el("table", { id: "dlq-topics" },
      el("tr", {}, el("th", {}, "topic"), el("th", { class: "num" }, "depth"), el("th", { class: "num" }, "pending"), el("th", {}, "error classes")),
      topics.map((t) => el("tr", { class: "clickable", "data-topic": t.topic, onclick: () => { location.hash = "dlq/" + encodeURIComponent(t.topic); } },
        el("td", { class: "mono" }, t.topic), el("td", { class: "num" }, number(t.depth)), el("td", { class: "num", "data-pending": t.topic }, number(t.pending)),
        el("td", {}, Object.entries(t.error_classes).map(([k, v]) => el("span", { class: "pill" }, `${k} ${v}`)))))));
  });
  if (topic) browseLetters(topic, browser, null);
}

async function browseLetters(topic, holder, after) {
  holder.replaceChildren(el("h2", {}, "Letters on " + topic));
  let page;
  try {
    page = await getJSON(`/api/dlq/${encodeURIComponent(topic)}?limit=50` + (after ? "&after=" + encodeURIComponent(after) : ""));
  } catch (error) {
    holder.append(el("div", { class: "notice error" }, String(error.message)));
    return;
  }
  const result = el("div", { id: "redrive-result" });
  const selected = new Set();
  const checkbox = (letter) => el("input", { type: "checkbox", disabled: letter.redriven, "data-order": letter.order_id,
    onchange: (event) => { if (event.target.checked) selected.add(letter.order_id); else selected.delete(letter.order_id); } });
  const redrive = async (payload, label) => {
    result.replaceChildren(el("div", { class: "muted" }, "previewing …"));
    try {
      const preview = await postJSON(`/api/dlq/${encodeURIComponent(topic)}/redrive`, Object.assign({ dry_run: true }, payload));
      const confirm = el("button", { class: "danger", id: "confirm-redrive", onclick: async () => {
        confirm.disabled = true;
        try {
          const done = await postJSON(`/api/dlq/${encodeURIComponent(topic)}/redrive`, Object.assign({ dry_run: false }, payload));
          result.replaceChildren(el("div", { class: "notice", id: "redrive-done" }, `Redriven: ${done.redriven.length} letter(s); skipped ${done.skipped.length}.`),
            done.skipped.map((s) => el("div", { class: "muted" }, s)));
          setTimeout(() => browseLetters(topic, holder, after), 800);
        } catch (error) {
          result.replaceChildren(el("div", { class: "notice error" }, String(error.message)));
        }
      } }, `Confirm: redrive ${preview.redriven.length}`);
      result.replaceChildren(el("div", { class: "notice", id: "redrive-preview" },
        `${label}: ${preview.redriven.length} letter(s) would go back to the topic they failed on, ${preview.skipped.length} skipped (their order already ended). `,
        preview.redriven.length ? confirm : "", " ", el("button", { class: "secondary", onclick: () => result.replaceChildren() }, "Cancel")),
        preview.skipped.map((s) => el("div", { class: "muted" }, s)));
    } catch (error) {
      result.replaceChildren(el("div", { class: "notice error" }, String(error.message)));
    }
  };
  holder.append(
    el("div", { class: "toolbar" },
      el("button", { id: "redrive-selected", onclick: () => (selected.size ? redrive({ orders: [...selected] }, "Selected") : result.replaceChildren(el("div", { class: "notice" }, "Select letters first."))) }, "Redrive selected …"),
      el("button", { class: "secondary", id: "redrive-all", onclick: () => redrive({ all: true }, "All pending") }, "Redrive all …"),
      el("span", { class: "muted" }, "Redrive needs the admin token (top right).")),
    result,
    page.letters.length === 0 ? el("div", { class: "notice" }, "No letters.") :
      el("table", { id: "letters" },
        el("tr", {}, el("th", {}, ""), el("th", {}, "order"), el("th", {}, "where"), el("th", {}, "error"), el("th", {}, "headers"), el("th", {}, "payload")),
        page.letters.map((l) => el("tr", { "data-letter": `${l.partition}/${l.offset}`, "data-order": l.order_id },
          el("td", {}, checkbox(l)),
          el("td", { class: "mono" }, l.order_id, l.redriven ? el("div", { class: "pill completed" }, "redriven") : ""),
          el("td", { class: "mono" }, `${l.partition}/${l.offset}`, el("div", { class: "muted" }, time(l.timestamp))),
          el("td", {}, el("b", {}, l.headers["error-class"] || "?"), el("div", {}, l.headers["error-message"] || "")),
          el("td", { class: "mono" }, Object.entries(l.headers).filter(([k]) => !k.startsWith("error-")).map(([k, v]) => el("div", {}, `${k}: ${v}`))),
          el("td", {}, el("div", { class: "payload mono" }, l.value))))),
    page.next ? el("div", { class: "toolbar" }, el("button", { class: "secondary", onclick: () => browseLetters(topic, holder, page.next) }, "Next page")) : "",
  );
}

// Topics: offsets and lag per group, with a sparkline of each group's lag.
function topics() {
  const lagHistory = {};
  const holder = el("div");
  main.append(el("h2", {}, "Topics"), holder);
  listen("topics", (frame) => {
    const list = frame.topics || [];
    holder.replaceChildren(el("table", { id: "topics" },
      el("tr", {}, el("th", {}, "topic"), el("th", { class: "num" }, "partitions"), el("th", { class: "num" }, "end offset"), el("th", { class: "num" }, "records"), el("th", {}, "lag per group")),
      list.map((t) => el("tr", { "data-topic": t.name },
        el("td", { class: "mono" }, t.name), el("td", { class: "num" }, t.partitions), el("td", { class: "num" }, number(t.end_offset)), el("td", { class: "num" }, number(t.records)),
        el("td", {}, Object.entries(t.lag).sort(([a], [b]) => a.localeCompare(b)).map(([group, lag]) => {
          const key = t.name + "|" + group;
          const series = (lagHistory[key] = lagHistory[key] || []);
          series.push(lag);
          if (series.length > 60) series.shift();
          return el("div", {}, el("span", { class: "mono" }, `${group}: ${number(lag)}`), " ", sparkline(series));
        }))))));
  });
}

window.addEventListener("hashchange", route);
getJSON("/healthz").then((health) => { document.getElementById("role").textContent = health.role; }).catch(() => {});
route();
