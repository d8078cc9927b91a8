// The kiosk page: start a run, follow it live (server-sent events), show the verdict.
// Plain JavaScript, no build step. Text from the server is set with textContent only.
"use strict";

const root = document.getElementById("kiosk");
const multi = root.dataset.multi === "true";
const needsToken = root.dataset.token === "true";
const $ = (id) => document.getElementById(id);
const serialInput = $("serial");
const operatorInput = $("operator");
const startButton = $("start");
const abortButton = $("abort");
const message = $("message");
let current = null;      // the run followed
let shownVerdict = null; // the run whose verdict is on screen
let refreshTimer = null;
let countdownTimer = null;
let promptDeadline = 0;
const thumbs = {};

operatorInput.value = localStorage.getItem("harness.operator") || "";

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = localStorage.getItem("harness.token");
  if (needsToken && token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function post(url, body, retried) {
  const res = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(body || {}) });
  if (res.status === 401 && !retried) {
    const token = window.prompt("This station needs its access token:");
    if (token) {
      localStorage.setItem("harness.token", token.trim());
      return post(url, body, true);
    }
  }
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  return { status: res.status, data: data };
}

function detailText(data) {
  const d = data && data.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => (e.loc || []).slice(-1)[0] + ": " + e.msg).join("; ");
  return "request refused";
}

async function startRun(dut) {
  const operator = operatorInput.value.trim();
  if (!operator) { message.textContent = "Enter the operator's name first."; operatorInput.focus(); return; }
  localStorage.setItem("harness.operator", operator);
  message.textContent = "";
  const body = { operator: operator };
  if (!multi && dut) body.dut = dut;
  const res = await post("/api/runs", body);
  if (res.status === 202) {
    follow(res.data.run_id);
  } else {
    message.textContent = detailText(res.data);
  }
}

$("start-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  startRun(serialInput ? serialInput.value.trim() : "");
});

abortButton.addEventListener("click", async () => {
  if (!current) return;
  abortButton.disabled = true;
  const res = await post("/api/runs/" + encodeURIComponent(current) + "/abort", {});
  if (res.status !== 202) message.textContent = detailText(res.data);
  else message.textContent = "Aborting: the station is being made safe…";
});

$("next-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const next = $("next-serial").value.trim();
  $("next-serial").value = "";
  hideVerdict();
  if (serialInput) serialInput.value = next;
  if (next) startRun(next);
  else if (serialInput) serialInput.focus();
});

$("prompt-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const answer = $("prompt-answer").value.trim();
  if (!current || !answer) return;
  $("prompt-answer").value = "";
  const res = await post("/api/runs/" + encodeURIComponent(current) + "/prompt", { answer: answer });
  if (res.status !== 202) message.textContent = detailText(res.data);
  closePrompt();
});

function follow(runId) {
  if (current !== runId) {
    current = runId;
    for (const k of Object.keys(thumbs)) delete thumbs[k];
    for (const lane of document.querySelectorAll(".lane")) {
      lane.querySelector(".tests").textContent = "";
      lane.querySelector(".step").textContent = "";
      lane.querySelector(".serial").textContent = "";
      const o = lane.querySelector(".lane-outcome"); o.textContent = ""; o.className = "lane-outcome";
      lane.querySelector(".thumb").hidden = true;
    }
    hideVerdict();
  }
  refresh();
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 150);
}

async function refresh() {
  if (!current) return;
  const res = await fetch("/api/runs/" + encodeURIComponent(current));
  if (!res.ok) return;
  render(await res.json());
}

function laneFor(slot) {
  return document.querySelector('.lane[data-slot="' + CSS.escape(slot) + '"]') ||
         document.querySelector(".lane");
}

const STARTING = "Starting: opening the station…";

function render(run) {
  const running = run.state === "running";
  startButton.disabled = running;
  abortButton.disabled = !running || run.aborting;
  if (running && run.aborting) message.textContent = "Aborting: the station is being made safe…";
  if (running && run.phase === "starting") {
    for (const lane of document.querySelectorAll(".lane")) lane.querySelector(".step").textContent = STARTING;
  }
  for (const s of run.slots) {
    const lane = laneFor(s.slot);
    // the camera's serial is not shown while the operator is asked to scan the label
    lane.querySelector(".serial").textContent = run.prompt && running ? "" : (s.serial || "");
    const o = lane.querySelector(".lane-outcome");
    o.textContent = s.outcome || "";
    o.className = "lane-outcome " + (s.outcome || "");
    lane.querySelector(".step").textContent = running ? (s.current_test ? shortName(s.current_test) + (s.step ? " · " + s.step : "") : s.step) : "";
    if (s.captures && thumbs[s.slot] !== s.captures) {
      thumbs[s.slot] = s.captures;
      // loaded aside, shown once it arrives: a frame not yet on disk keeps the last one
      const url = "/api/runs/" + encodeURIComponent(run.run_id) + "/thumbnail.png?slot=" +
                  encodeURIComponent(s.slot) + "&n=" + s.captures;
      const next = new Image();
      const img = lane.querySelector(".thumb");
      next.onload = () => { if (current === run.run_id) { img.src = url; img.hidden = false; } };
      next.onerror = () => { if (thumbs[s.slot] === s.captures) delete thumbs[s.slot]; };
      next.src = url;
    }
  }
  for (const lane of document.querySelectorAll(".lane")) {
    const slot = lane.dataset.slot;
    const list = lane.querySelector(".tests");
    list.textContent = "";
    for (const t of run.tests.filter((t) => multi ? t.slot === slot : true)) {
      const li = document.createElement("li");
      li.dataset.testId = t.test_id;
      li.textContent = shortName(t.test_id);
      const span = document.createElement("span");
      span.className = "outcome " + (t.outcome || "");
      span.textContent = t.outcome || "running…";
      if (!t.outcome) li.className = "running";
      li.appendChild(span);
      list.appendChild(li);
    }
  }
  if (run.prompt && running) openPrompt(run.prompt); else closePrompt();
  if (!running && run.outcome && shownVerdict !== run.run_id) {
    shownVerdict = run.run_id;
    showVerdict(run);
    loadHistory();
  }
}

function shortName(testId) {
  const i = testId.lastIndexOf("::");
  return i >= 0 ? testId.slice(i + 2) : testId;
}

function showVerdict(run) {
  message.textContent = "";
  const box = $("verdict");
  box.className = "verdict " + run.outcome;
  $("verdict-outcome").textContent = run.outcome;
  const serialLine = $("verdict-serial");
  serialLine.textContent = "";
  for (const s of run.slots) {  // on a multi-slot station: each DUT's own verdict, to bin it
    const span = document.createElement("span");
    span.className = multi ? "slot-verdict " + (s.outcome || "") : "";
    span.textContent = multi ? s.slot + " · " + (s.serial || "?") + " · " + (s.outcome || "") : (s.serial || "");
    serialLine.appendChild(span);
  }
  $("verdict-reason").textContent = run.reason || "";
  const failed = run.failed_limits.concat(run.unjudged.map((u) => ({ slot: u.slot, limit_id: u.limit_id, figure: u.figure, value: "not judged", limit: "", unit: "", outcome: "INCOMPLETE" })));
  limitTable($("verdict-limits"), failed);
  limitTable($("verdict-marginal"), run.marginal_limits || []);
  box.hidden = false;
  // a scan (serial + Enter) clears it; without a serial field, Enter on the Next button
  (multi ? $("next-form").querySelector("button") : $("next-serial")).focus();
}

function limitTable(table, rows) {
  const body = table.querySelector("tbody");
  body.textContent = "";
  for (const l of rows) {
    const tr = document.createElement("tr");
    tr.className = "limit";
    for (const text of [...(multi ? [l.slot] : []), l.limit_id, l.figure, l.value + (l.unit ? " " + l.unit : ""), l.limit, l.outcome]) {
      const td = document.createElement("td");
      td.textContent = text || "";
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  table.hidden = rows.length === 0;
}

function hideVerdict() { $("verdict").hidden = true; }

function openPrompt(p) {
  const dialog = $("prompt");
  $("prompt-slot").textContent = p.slot ? "Slot " + p.slot + " · " : "";
  promptDeadline = Date.now() + p.remaining_s * 1000;
  if (!dialog.open) {
    dialog.showModal();
    $("prompt-answer").focus();
  }
  if (!countdownTimer) {
    const tick = () => {
      $("prompt-countdown").textContent = Math.max(0, Math.round((promptDeadline - Date.now()) / 1000));
    };
    tick();
    countdownTimer = setInterval(tick, 500);
  }
}

function closePrompt() {
  const dialog = $("prompt");
  if (dialog.open) dialog.close();
  if (countdownTimer) { clearInterval(countdownTimer); countdownTimer = null; }
}

function localTime(iso) {  // the station's clock, not UTC: what the operator's watch says
  const d = new Date(iso || "");
  return isNaN(d) ? (iso || "") : d.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

async function loadHistory() {
  const res = await fetch("/api/history");
  if (!res.ok) return;
  const data = await res.json();
  const body = $("history").querySelector("tbody");
  body.textContent = "";
  for (const r of data.runs) {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[localTime(r.started), ""], [r.slot, ""], [r.serial, ""], [r.operator, ""], [r.outcome, r.outcome]]) {
      const td = document.createElement("td");
      td.textContent = text || "";
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("offline").hidden = true; };
  source.onerror = () => { $("offline").hidden = false; };  // EventSource reconnects itself
  source.onmessage = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    $("offline").hidden = true;
    if (ev.type === "state") {  // on every (re)connect: where the station is now
      if (ev.run) {
        if (current !== ev.run.run_id) follow(ev.run.run_id);
        render(ev.run);
      }
      loadHistory();
      return;
    }
    if (ev.type === "run_started") { follow(ev.run_id); return; }
    if (ev.run_id !== current) return;
    if (ev.type === "run_ended") refresh(); else scheduleRefresh();
  };
}

setInterval(() => { if (current && !startButton.disabled) return; if (current) refresh(); }, 1000);
loadHistory();
connect();
