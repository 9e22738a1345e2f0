// SPDX-License-Identifier: MIT
// The live page of `aii dashboard`: one server-sent event per snapshot of the fleet, the page
// rebuilt from it. Text goes in with textContent only (nothing a node reports is ever parsed as
// HTML); amounts arrive as exact decimal strings and are shown as they are.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function clock(t) {
  if (!t) return "-";
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

function num(v, digits, unit) {
  if (v === null || v === undefined) return "-";
  return Number(v).toFixed(digits) + (unit ? " " + unit : "");
}

function short(hex) {
  return hex ? String(hex).slice(0, 12) : "-";
}

function replaceBody(target, rows) {
  target.replaceChildren(...rows);
}

function renderVerdict(view) {
  const v = view.verdict;
  const badge = $("#verdict");
  badge.className = "badge " + v.status;
  badge.dataset.status = v.status;
  badge.textContent = v.status;
  const f = view.fleet;
  const epoch = v.epoch === null || v.epoch === undefined ? "no epoch yet" : "epoch " + v.epoch;
  const ms = v.ms === null || v.ms === undefined ? "" : ", verified in " + num(v.ms, 2) + " ms";
  $("#summary").textContent =
    `${view.nodes.length} node(s), ${epoch}${ms}; source: ${f.source}` +
    (f.fresh ? "" : " (STALE: no aggregator updates the database)");
}

function renderQuantities(view) {
  const totals = view.verdict.totals || {};
  const names = Object.keys(totals).sort();
  if (!names.length) {
    replaceBody($("#quantities"), [el("p", { class: "muted", text: "no epoch verified yet" })]);
    return;
  }
  const head = el("tr", {}, ...["quantity", "balances + held", "in flight", "=", "opening",
    "inflow", "outflow", "delta", "verdict"].map((h) => el("th", { text: h })));
  const rows = names.map((q) => {
    const t = totals[q];
    const x = t.text || {};
    const ok = t.delta === 0;
    return el("tr", { "data-quantity": q },
      el("td", { text: q }), el("td", { text: x.held }), el("td", { text: "+ " + x.in_flight }),
      el("td", { text: "=" }), el("td", { text: x.opening }), el("td", { text: "+ " + x.inflow }),
      el("td", { text: "- " + x.outflow }),
      el("td", { class: ok ? "delta-ok" : "delta-bad", text: x.delta }),
      el("td", { class: ok ? "delta-ok" : "delta-bad", text: ok ? "conserved" : "VIOLATED" }));
  });
  replaceBody($("#quantities"), [el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))]);
}

function renderAlerts(view) {
  const items = (view.verdict.problems || []).map((p) =>
    el("li", { class: /violation|isolated|balance/.test(p.why) ? "critical" : "warning",
      "data-node": p.node || "" },
      `${clock(p.since)} ${p.node || "fleet"}: ${p.why}`));
  replaceBody($("#alerts"), items.length ? items : [el("li", { class: "empty", text: "none" })]);
}

function taskTable(tasks) {
  if (!tasks || !tasks.length) return el("p", { class: "muted", text: "no task statistics yet" });
  const head = el("tr", {}, ...["task", "jobs", "misses", "overruns", "resp max", "latency max"]
    .map((h) => el("th", { text: h })));
  const rows = tasks.map((t) => el("tr", {},
    el("td", { text: t.name }), el("td", { text: t.jobs }), el("td", { text: t.misses }),
    el("td", { text: t.overruns }), el("td", { text: num(t.resp_max_us, 0, "µs") }),
    el("td", { text: num(t.latency_max_us, 0, "µs") })));
  return el("table", { class: "tasks" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderNodes(view, actions) {
  const iso = {};
  for (const i of view.isolated) iso[i.node] = i;
  const cards = view.nodes.map((n) => {
    const isolated = iso[n.name];
    const state = n.state || "unknown";
    const title = el("h3", {}, n.name, el("span", { class: "badge " + state, text: state }),
      isolated ? el("span", { class: "badge isolated", text: "ISOLATED" }) : null);
    const dl = el("dl", {});
    const add = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v }));
    add("last heartbeat", n.last_heartbeat_s == null ? "-" : num(n.last_heartbeat_s, 1, "s ago"));
    add("latency", num(n.latency_ms, 1, "ms"));
    add("deadline misses", n.misses == null ? "-" : n.misses);
    add("seq / replica", `${n.seq ?? "-"} / ${n.replica_seq ?? "-"}` +
      (n.lag ? ` (lag ${n.lag})` : "") + (n.verified ? ", verified" : ", not verified"));
    add("storage", n.node_state || "ok");
    if ((n.links || 1) > 1) {
      // Several links (docs/fleet.md section 3.1): the one in use; a backup says why.
      add("link", `${n.link_index ?? "?"}/${n.links} ${n.link ?? "-"}` +
        (n.link_note ? ` (${n.link_note})` : ""));
    }
    add("firmware", short(n.fw));
    add("config", short(n.cfg));
    for (const [q, text] of Object.entries(n.totals_text || {})) add(q, text);
    if (state !== "online" && n.reason) add("why", n.reason);
    const card = el("div", {
      class: "card" + (isolated ? " is-isolated" : ""), "data-node": n.name,
      "data-state": state, "data-isolated": isolated ? "1" : "0",
    }, title, dl);
    if (isolated) {
      card.append(el("div", { class: "why", text: `isolated since ${clock(isolated.since)}: ${isolated.reason}` }));
      if (actions) {
        card.append(el("button", { class: "clear-btn", type: "button", "data-node": n.name,
          onclick: () => clearIsolation(n.name) }, `clear ${n.name}'s isolation`));
      }
    }
    card.append(taskTable(n.tasks));
    return card;
  });
  replaceBody($("#nodes"), cards);
}

function renderTransfers(view) {
  const tr = view.transfers;
  const counts = Object.entries(tr.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  $("#transfer-counts").textContent = counts ? "in the log: " + counts : "no transfers yet";
  const rows = (tr.recent || []).map((t) => el("tr", { "data-state": t.state },
    el("td", { text: clock(t.updated) }), el("td", { text: t.txid }), el("td", { text: t.src }),
    el("td", { text: t.dst }), el("td", { text: t.amount_text }),
    el("td", { text: t.state + (t.reason ? ` (${t.reason})` : "") })));
  replaceBody($("#transfers tbody"), rows);
}

function renderAudit(view) {
  const a = view.audit;
  const state = a.ok === true ? "intact" : a.ok === false ? "BROKEN" : "not verified";
  const last = (a.last || []).slice(-4).map((r) => `#${r.seq} ${r.kind}`).join(", ");
  replaceBody($("#audit"), [
    el("p", { "data-ok": String(a.ok) }, `${a.stored ?? a.count} record(s), hash chain ${state}`),
    el("p", { class: "muted", text: a.text + (last ? "; last: " + last : "") }),
  ]);
  const vs = view.violations.map((v) => el("li", { class: "critical" },
    `${clock(v.t)} ${v.node}: ${v.kind} ${v.quantity || ""} ${v.delta_text}`));
  replaceBody($("#violations"), vs.length ? vs : [el("li", { class: "empty", text: "none" })]);
}

function renderEvents(events) {
  const items = events.slice().reverse().slice(0, 30).map((e) =>
    el("li", { class: e.severity, "data-kind": e.kind }, `${clock(e.t)} ${e.text}`));
  replaceBody($("#events"), items.length ? items : [el("li", { class: "empty", text: "none yet" })]);
}

function render(state) {
  const view = state.view;
  $("#operator").hidden = !state.actions;
  renderEvents(state.events || []);
  if (!view) return;
  renderVerdict(view);
  renderQuantities(view);
  renderAlerts(view);
  renderNodes(view, state.actions);
  renderTransfers(view);
  renderAudit(view);
}

async function clearIsolation(node) {
  const out = $("#action-result");
  const token = $("#token").value.trim();
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  out.className = "";
  out.textContent = `clearing ${node}…`;
  try {
    const r = await fetch("/api/clear", { method: "POST", headers, body: JSON.stringify({ node }) });
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      out.className = "done";
      out.textContent = `${node}: isolation cleared by ${body.by} (audited)`;
    } else {
      out.className = "refused";
      out.textContent = `refused (${r.status}): ${body.error || r.statusText}`;
    }
  } catch (e) {
    out.className = "refused";
    out.textContent = "the dashboard did not answer: " + e;
  }
}

function connect() {
  const link = $("#link");
  const source = new EventSource("/api/events");
  source.addEventListener("state", (ev) => {
    link.textContent = "live, updated " + new Date().toLocaleTimeString([], { hour12: false });
    render(JSON.parse(ev.data));
  });
  source.onerror = () => { link.textContent = "connection lost: reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", () => {
  const token = $("#token");
  token.value = sessionStorage.getItem("aii-operator-token") || "";
  token.addEventListener("change", () => sessionStorage.setItem("aii-operator-token", token.value.trim()));
  $("#forget").addEventListener("click", () => {
    token.value = "";
    sessionStorage.removeItem("aii-operator-token");
  });
  connect();
});
