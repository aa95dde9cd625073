"""The status page's HTML (`/status`): one self-contained document, no external assets.

Its script fetches `/status.json` (with the page's own `?topic=`/`?limit=`) once a second,
after the previous answer arrived, and renders it with DOM calls (text only: nothing from
the cluster is parsed as HTML). Elements carry ids and data-* attributes that tests and
operators' scripts can select: `#q-leader`, `#q-epoch`, `tr[data-voter="1"]`,
`tr[data-broker="2"] .state`, `tr[data-partition="name-0"] .leader`, `#offline-count`,
`#events li`.
"""

STATUS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kwire status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin-bottom:.6em}
td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}th{background:#f3f3f3}
.fenced,.offline,.err{color:#b00;font-weight:bold}.active{color:#070}
.controlled_shutdown{color:#a60}#stamp{color:#666}.topic td{background:#fafafa;font-weight:bold}
#events{font-family:monospace;padding-left:1em;list-style:none}
</style></head><body>
<h1>kwire controller <span id="node"></span></h1>
<div id="stamp">loading&hellip;</div>
<h2>Quorum</h2>
<table><tbody id="quorum"></tbody></table>
<table><thead><tr><th>voter</th><th>endpoints</th><th>log end offset</th><th>lag</th>
<th>last fetch</th><th>last caught up</th></tr></thead><tbody id="voters"></tbody></table>
<div id="observers"></div>
<h2>Brokers <span id="broker-count"></span></h2>
<table><thead><tr><th>id</th><th>state</th><th>epoch</th><th>last heartbeat</th>
<th>listeners</th><th>rack</th></tr></thead><tbody id="brokers"></tbody></table>
<h2>Topics <span id="topic-count"></span></h2>
<form id="filter">name or prefix <input id="topic" name="topic" size="30">
limit <input id="limit" name="limit" size="5"> <button>show</button></form>
<table><thead><tr><th>partition</th><th>leader</th><th>isr</th><th>replicas</th>
<th>leader epoch</th><th></th></tr></thead><tbody id="topics"></tbody></table>
<h2>Offline partitions: <span id="offline-count"></span></h2>
<div id="offline"></div>
<h2>Latest metadata events</h2>
<ol id="events"></ol>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const kid of kids) {
    node.append(kid instanceof Node ? kid : kid === null || kid === undefined ? "-" : String(kid));
  }
  return node;
}
function row(attrs, cells) {
  const tr = el("tr", attrs);
  for (const [cls, value] of cells) tr.append(el("td", {class: cls}, value));
  return tr;
}
const age = (ms) => ms === null || ms === undefined ? "-" : ms + " ms ago";
const list = (xs) => "[" + xs.join(", ") + "]";
function fill(id, rows) { $(id).replaceChildren(...rows); }

function render(s) {
  const q = s.quorum;
  $("node").textContent = q.node_id + " of cluster " + s.cluster_id;
  $("stamp").textContent = "updated " + new Date(s.now_ms).toISOString();
  $("stamp").className = "";
  fill("quorum", [
    ["state", "q-state", q.state + (q.active_controller ? " (active controller)" : "")],
    ["leader", "q-leader", q.leader_id], ["epoch", "q-epoch", q.epoch],
    ["high watermark", "q-hw", q.high_watermark], ["log end offset", "q-leo", q.log_end_offset],
  ].map(([k, id, v]) => el("tr", {}, el("th", {}, k), el("td", {id: id}, v))));
  fill("voters", q.voters.map((v) => row({"data-voter": v.id}, [
    ["id", v.id + (v.id === q.leader_id ? " (leader)" : "")], ["endpoints", v.endpoints.join(" ")],
    ["leo", v.log_end_offset], ["lag", v.lag], ["fetch", age(v.last_fetch_age_ms)],
    ["caught", age(v.last_caught_up_age_ms)]])));
  $("observers").textContent = q.observers.length ? "observers: " + q.observers.map(
    (o) => o.id + " (lag " + o.lag + ")").join(", ") +
    (q.observers_more ? ", " + q.observers_more + " more" : "") : "";
  const b = s.brokers;
  const hidden = b.more ? ", " + b.more + " not shown" : "";
  $("broker-count").textContent = "(" + b.count + hidden + ")";
  fill("brokers", b.shown.map((r) => row({"data-broker": r.id}, [
    ["id", r.id], ["state " + r.state, r.state], ["epoch", r.epoch],
    ["hb", age(r.last_heartbeat_age_ms)], ["listeners", r.listeners.join(" ")],
    ["rack", r.rack]])));
  const t = s.topics;
  $("topic-count").textContent = "(" + t.count + (t.filter !== null ?
    ", " + t.matching + " matching " + JSON.stringify(t.filter) : "") +
    (t.more ? ", " + t.more + " more not shown" : "") + ")";
  const rows = [];
  for (const topic of t.shown) {
    const n = topic.partition_count;
    const count = n + (n === 1 ? " partition" : " partitions");
    rows.push(row({class: "topic", "data-topic": topic.name}, [["name", topic.name],
      ["count", count], ["id", topic.id], ["", ""], ["", ""], ["", ""]]));
    for (const p of topic.partitions) {
      rows.push(row({"data-partition": topic.name + "-" + p.partition}, [
        ["partition", topic.name + "-" + p.partition], ["leader", p.leader], ["isr", list(p.isr)],
        ["replicas", list(p.replicas)], ["epoch", p.leader_epoch],
        [p.offline ? "state offline" : "state", p.offline ? "offline" : "online"]]));
    }
    if (topic.partitions_more) {
      rows.push(row({}, [["more", topic.partitions_more + " more partitions not shown"]]));
    }
  }
  fill("topics", rows);
  const o = s.offline;
  $("offline-count").textContent = o.count;
  $("offline").textContent = o.shown.map((p) => p.topic + "-" + p.partition).join(", ") +
    (o.more ? ", " + o.more + " more" : "");
  fill("events", s.events.shown.map((e) => el("li", {"data-offset": e.offset},
    e.offset + "  " + new Date(e.time_ms).toISOString().slice(11, 23) + "  " + e.text)));
}

async function refresh() {
  try {
    const answer = await fetch("status.json" + location.search, {cache: "no-store"});
    if (!answer.ok) throw new Error(answer.status + " " + (await answer.text()).trim());
    render(await answer.json());
  } catch (error) {
    $("stamp").textContent = "cannot refresh: " + error.message;
    $("stamp").className = "err";
  }
  setTimeout(refresh, 1000);
}
const params = new URLSearchParams(location.search);
$("topic").value = params.get("topic") || "";
$("limit").value = params.get("limit") || "";
refresh();
</script></body></html>
"""
