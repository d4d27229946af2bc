// voiced status page: live state (Server-Sent Events), health, latency, the conversation,
// and the mic button. Plain script, no build step, no CDN; talks only to its own origin.
"use strict";

// Recording state lives outside the click handler so the second click can stop what the
// first one started.
let isRecording = false;
let mediaRecorder = null;
let chunks = [];
let micStream = null;
let busyUploading = false;

const turns = new Map();   // turn id -> {data, element}
const $ = (id) => document.getElementById(id);
const STATE_TEXT = {
  starting: "starting…", idle: "idle, listening for the wake word", listening: "listening…",
  transcribing: "transcribing…", thinking: "thinking…", speaking: "speaking…",
  stopping: "stopping", disconnected: "not connected to voiced", unknown: "connecting…",
};

function setState(state) {
  $("state").dataset.state = state;
  $("state-text").textContent = STATE_TEXT[state] || state;
}

function showNotice(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function setMicStatus(message, isError = false) {
  const el = $("mic-status");
  el.textContent = message;
  el.classList.toggle("error", isError);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;   // textContent only: transcripts are untrusted
  return node;
}

function sourceLabel(trigger) {
  if (!trigger) return "";
  if (trigger.startsWith("wake:")) return `wake word (${trigger.slice(5)})`;
  return { browser: "from a browser", api: "API trigger", say: "said on request", cli: "command line" }[trigger] || trigger;
}

// One <li> per turn, updated in place: the same turn arrives as live events, as a finished
// "turn" event, and (for this page's own uploads) as the HTTP response, in any order.
function upsertTurn(partial, audioUrl) {
  if (partial.id === undefined || partial.id === null) return;
  let entry = turns.get(partial.id);
  if (!entry) {
    entry = { data: {}, element: el("li", "turn") };
    entry.element.id = `turn-${partial.id}`;
    turns.set(partial.id, entry);
    $("history-empty").hidden = true;
    $("history").appendChild(entry.element);
  }
  for (const [key, value] of Object.entries(partial)) {
    if (value !== undefined && value !== null && value !== "") entry.data[key] = value;
  }
  if (audioUrl) entry.data.audio_url = audioUrl;
  renderTurn(entry);
  $("history").scrollTop = $("history").scrollHeight;
  return entry;
}

function renderTurn(entry) {
  const d = entry.data;
  const li = entry.element;
  const oldAudio = li.querySelector("audio");   // keep it: it may be playing
  li.replaceChildren();
  const when = d.time ? new Date(d.time * 1000).toLocaleTimeString() : "";
  const language = d.language && d.language !== "en" ? `in ${d.language}` : "";
  li.appendChild(el("div", "meta", [when, sourceLabel(d.trigger), language].filter(Boolean).join(" · ")));
  if (d.transcript) li.appendChild(el("p", "bubble user", d.transcript));
  if (d.reply) li.appendChild(el("p", "bubble bot", d.reply));
  if (d.outcome && !["answered", "spoken", "in progress"].includes(d.outcome)) {
    li.appendChild(el("p", "outcome", d.transcript || d.reply ? d.outcome : `nothing to answer (${d.outcome})`));
  }
  if (oldAudio) li.appendChild(oldAudio);
  else if (d.audio_url) li.appendChild(replyAudio(d.audio_url));
}

function replyAudio(url) {
  const audio = el("audio", "reply-audio");
  audio.controls = true;
  audio.preload = "auto";
  audio.setAttribute("aria-label", "the reply, spoken");
  audio.addEventListener("playing", () => { audio.dataset.played = "true"; });
  audio.src = url;
  audio.play().catch(() => setMicStatus("Press play to hear the reply (the browser blocked autoplay)."));
  return audio;
}

// --- health and latency --------------------------------------------------------------
function card(id, ok, main, detail) {
  const c = $(id);
  c.classList.toggle("ok", ok === true);
  c.classList.toggle("bad", ok === false);
  const dd = c.querySelector("dd");
  dd.replaceChildren(document.createTextNode(main));
  if (detail) dd.appendChild(el("small", "", detail));
}

function engineCard(id, engine) {
  if (!engine) return card(id, null, "not loaded");
  const model = String(engine.model || "").split("/").pop();
  const notes = (engine.notes || []).join("; ");   // informational (thread count, forced language...)
  const degraded = engine.degraded || engine.degradation || "";   // a fallback and its reason, if any
  card(id, !degraded, `${engine.name} on ${engine.device}`, [degraded, model, notes].filter(Boolean).join(" — "));
}

function wyomingCard(w) {
  // Remote STT/TTS health (a satellite) and the server's load (a GPU box); hidden when neither.
  const remotes = (w && w.remotes) || [], server = w && w.server;
  $("card-wyoming").hidden = !remotes.length && !server;
  if (!remotes.length && !server) return;
  const main = remotes.map((r) => `${r.role.toUpperCase()} ${r.state}`).join(", ") || `serving ${server.uri}`;
  const details = remotes.map((r) => `${r.role.toUpperCase()} ` + (r.state === "down"
    ? `${r.last_error}` + (r.fallback ? ` (local ${r.fallback} answers)` : "") +
      (r.retry_in_s !== null ? `, retry in ${r.retry_in_s} s` : "")
    : `${r.uri}: ${r.requests.remote} remote, ${r.requests.local} local requests`));
  if (server) {
    details.push(`server ${server.uri}: ${server.clients}/${server.max_clients} clients, ` +
                 `${server.queue.active} in queue, ${server.queue.served} served, ${server.queue.refused} busy`);
  }
  card("card-wyoming", remotes.every((r) => r.state === "up"), main, details.join(" · "));
}

function homeAssistantCard(ha) {
  // The ESPHome-API satellite: hidden unless [homeassistant] enabled.
  $("card-homeassistant").hidden = !(ha && ha.enabled);
  if (!ha || !ha.enabled) return;
  if (ha.error) { card("card-homeassistant", false, "not serving", ha.error); return; }
  const timers = (ha.timers || []).map((t) => `timer ${t.name || t.id}: ${t.left_s} s left`);
  const main = ha.voice ? "connected" : ha.connected ? "connected, no voice runs" : "waiting for Home Assistant";
  card("card-homeassistant", ha.voice ? true : null, main,
       [`${ha.listening}${ha.encrypted ? " (encrypted)" : ""}`, ha.peer ? `from ${ha.peer}` : "",
        `${ha.runs} runs`, ...timers].filter(Boolean).join(" · "));
}

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function showStatus(st) {
  setState(st.state);
  card("card-input", st.input.ok, st.input.device, st.input.detail);
  card("card-output", st.output.ok, st.output.device, st.output.detail);
  engineCard("card-stt", st.engines.stt);
  engineCard("card-tts", st.engines.tts);
  wyomingCard(st.wyoming);
  homeAssistantCard(st.homeassistant);
  if (st.gpu) {
    const vram = st.gpu.used_mb === undefined ? (st.gpu.error || st.gpu.detail || "")
      : `VRAM ${st.gpu.used_mb} / ${st.gpu.total_mb} MB` + (st.gpu.limit_mb ? ` (cap ${st.gpu.limit_mb} MB)` : "");
    card("card-gpu", st.gpu.usable && !st.gpu.fault, st.gpu.name, vram);
  } else {
    card("card-gpu", null, "none", "engines run on the CPU");
  }
  const c = st.counts || {};
  card("card-daemon", st.alive, st.alive ? `up ${duration(st.uptime_s)}` : "NOT ALIVE",
       `${c.turns || 0} turns, ${c.errors || 0} errors, ${c.recoveries || 0} recoveries · wake: ${st.wake_words.join(", ")}` +
       (st.alive ? "" : ` · ${st.alive_reason}`) + endOfTurn(st.end_of_turn));
  const rows = Object.entries(st.latency || {}).map(([stage, v]) => {
    const tr = el("tr");
    tr.append(el("td", "", stage), el("td", "", `${v.median_s.toFixed(2)} s`),
              el("td", "", `${v.p95_s.toFixed(2)} s`), el("td", "", String(v.n)));
    return tr;
  });
  if (rows.length) $("latency").replaceChildren(...rows);
  for (const t of st.turns || []) if (!turns.has(t.id)) upsertTurn(t);
  showSummary(st);
  drawLatencyChart(st.turns || [], st.latency || {});
}

function endOfTurn(eot) {
  if (!eot) return "";
  const how = eot.mode === "semantic" ? `semantic (${eot.model})` : `silence${eot.detail ? ` (${eot.detail})` : ""}`;
  const sp = eot.speculations;
  return ` · end of turn: ${how}; early answers ${sp.used}/${sp.started} used`;
}

async function refreshStatus() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (response.status === 401) {
      showNotice("This voiced needs its token: open this page as /?token=YOUR_TOKEN once.");
      return;
    }
    if (!response.ok) throw new Error(`status ${response.status}`);
    showStatus(await response.json());
    showNotice("");
  } catch (err) {
    setState("disconnected");
    showNotice(`Cannot reach voiced (${err.message}). Is the daemon running?`);
    $("summary").dataset.level = "bad";
    $("summary-headline").textContent = "Not connected to voiced: this page cannot tell how it is doing.";
  }
}

// --- "how am I doing": one plain sentence, then the reasons ---------------------------
function spoken(name) { return String(name).replace(/_/g, " "); }

function problems(st) {
  // Each degraded part: what is wrong, in plain words, with the daemon's own reason.
  const out = [];
  if (!st.input.ok) out.push(`no microphone (${st.input.detail || st.input.device})`);
  if (!st.output.ok) out.push(`no speaker, replies play only in a browser (${st.output.detail || st.output.device})`);
  const names = { stt: "speech to text", tts: "the voice" };
  for (const role of ["stt", "tts"]) {
    const e = (st.engines || {})[role];
    if (!e) { out.push(`${names[role]} is not loaded`); continue; }
    const r = e.recovery || {};
    if (r.degraded) out.push(`${names[role]} runs on ${r.device} instead of ${r.preferred}` + (r.reason ? ` (${r.reason})` : ""));
  }
  if (st.gpu && (st.gpu.fault || !st.gpu.usable)) {
    out.push(`GPU ${st.gpu.name} ${st.gpu.fault ? "failed" : "not usable"} (${st.gpu.error || st.gpu.detail || st.gpu.fault})`);
  }
  const ha = st.homeassistant;
  if (ha && ha.enabled && ha.error) out.push(`Home Assistant link down (${ha.error})`);
  for (const r of ((st.wyoming || {}).remotes || [])) {
    if (r.state === "down") out.push(`remote ${r.role.toUpperCase()} ${r.uri} down (${r.last_error})` +
                                      (r.fallback ? `, the local ${r.fallback} answers` : ""));
  }
  const eot = st.end_of_turn;
  if (eot && eot.detail) out.push(`requests end after silence only (${eot.detail})`);
  return out;
}

function summarize(st) {
  const wake = (st.wake_words || []).map(spoken).join(" or ") || "the wake word";
  if (!st.alive) return { level: "bad", headline: `Not working: ${st.alive_reason}` };
  if (st.state === "starting") return { level: "unknown", headline: `Starting: ${st.ready_reason || "loading models"}` };
  if (st.state === "stopping") return { level: "bad", headline: "Stopping" };
  const found = problems(st);
  const doing = st.input.ok ? `listening for ${wake}` : "answering uploads and the API";
  if (found.length) return { level: "degraded", headline: `Degraded: ${found.join("; ")}; ${doing}` };
  return { level: "ok", headline: `All good: ${doing}` };
}

function showSummary(st) {
  const s = summarize(st);
  $("summary").dataset.level = s.level;
  $("summary-headline").textContent = s.headline;
  const engine = (role) => {
    const e = (st.engines || {})[role];
    return e ? `${e.name} on ${e.device}` : "not loaded";
  };
  const facts = [
    `Speech to text: ${engine("stt")}`, `Voice: ${engine("tts")}`,
    `Microphone: ${st.input.ok ? st.input.device : "down"}`,
    `Speaker: ${st.output.ok ? st.output.device : "down"}`,
    st.gpu ? `GPU: ${st.gpu.name}` : "GPU: none (CPU only)",
    st.ready ? "Ready for a request" : `Not ready: ${st.ready_reason}`,
  ];
  $("summary-details").replaceChildren(...facts.map((f) => el("li", "", f)));
}

// --- the latency chart: one stacked bar per recent turn (inline SVG) --------------------
const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_STAGES = [["stt", "speech to text"], ["respond", "respond"], ["tts_first_audio", "first audio"],
                      ["record", "recording"]];   // bottom up: the wait first, then the request itself

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(value) {   // the smallest 1, 2, 2.5 or 5 x 10^n at or above value
  if (!(value > 0)) return 0.25;
  const unit = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * unit >= value - 1e-9) return m * unit;
  return 10 * unit;
}

function seconds(value) { return `${Number(value.toFixed(2))} s`; }

function drawLatencyChart(turnList, latency) {
  const chart = $("latency-chart");
  const W = 400, H = 190, left = 36, right = 62, top = 8, bottom = 22;
  const plotW = W - left - right, plotH = H - top - bottom;
  const bars = turnList.filter((t) => t.timings && CHART_STAGES.some(([k]) => t.timings[k] > 0)).slice(-20);
  const v2v = latency.voice_to_voice;
  const nodes = [];
  if (!bars.length) {
    nodes.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, "no timed turns yet"));
    chart.replaceChildren(...nodes);
    return;
  }
  const totals = bars.map((t) => CHART_STAGES.reduce((sum, [k]) => sum + (t.timings[k] || 0), 0));
  const step = niceStep((Math.max(...totals, v2v ? v2v.p95_s : 0) * 1.05) / 4);
  const yMax = 4 * step;
  const y = (s) => top + plotH - (s / yMax) * plotH;
  for (let i = 0; i <= 4; i++) {   // grid and axis labels
    const value = step * i;
    nodes.push(svg("line", { x1: left, x2: left + plotW, y1: y(value), y2: y(value), class: "grid" }));
    nodes.push(svg("text", { x: left - 4, y: y(value) + 3, "text-anchor": "end", class: "axis" }, seconds(value)));
  }
  const band = plotW / Math.max(bars.length, 8);
  bars.forEach((t, i) => {
    const g = svg("g", { class: "bar", "data-turn": t.id });
    const x = left + i * band + band * 0.15, w = band * 0.7;
    let base = 0;
    const parts = [];
    for (const [key, label] of CHART_STAGES) {
      const s = t.timings[key];
      if (!(s > 0)) continue;
      g.appendChild(svg("rect", { x, width: w, y: y(base + s), height: Math.max(0.5, y(base) - y(base + s)),
                                  class: `seg ${key === "tts_first_audio" ? "first_audio" : key}` }));
      parts.push(`${label} ${s.toFixed(2)} s`);
      base += s;
    }
    g.prepend(svg("title", {}, `turn ${t.id} (${sourceLabel(t.trigger) || "?"}): ${parts.join(", ")}`));
    if (bars.length <= 12 || i % 2 === bars.length % 2) {
      g.appendChild(svg("text", { x: x + w / 2, y: H - bottom + 13, "text-anchor": "middle", class: "axis" }, `#${t.id}`));
    }
    nodes.push(g);
  });
  if (v2v) {   // the median and p95 from end of speech to first audio, over every turn counted
    for (const [name, value, cls] of [["p50", v2v.median_s, "p50"], ["p95", v2v.p95_s, "p95"]]) {
      nodes.push(svg("line", { x1: left, x2: left + plotW, y1: y(value), y2: y(value), class: `mark ${cls}` }));
      nodes.push(svg("text", { x: left + plotW + 4, y: y(value) + (cls === "p95" ? -2 : 9), class: `mark-label ${cls}` },
                     `${name} ${value.toFixed(2)} s`));
    }
  }
  nodes.push(svg("line", { x1: left, x2: left + plotW, y1: y(0), y2: y(0), class: "axis-line" }));
  chart.replaceChildren(...nodes);
  chart.setAttribute("aria-label", `${bars.length} recent turns; ` +
                     (v2v ? `median ${v2v.median_s.toFixed(2)} s, p95 ${v2v.p95_s.toFixed(2)} s to the first audio` : ""));
}

// --- the live microphone level and wake word scores (GET /api/meter, only while shown) --
let meterSource = null;
let lastSound = 0;
const meterPeak = { readings: 0, db: null, scores: {} };   // the highest seen since the page opened
const LEVEL_FLOOR_DB = -60;
const SCORE_HOLD_MS = 2000;
const scoreHold = {};   // wake word -> {score, at}: the peak marker
let levelHold = { pct: 0, at: 0 };

function openMeter() {
  if (meterSource || document.hidden) return;
  meterSource = new EventSource("/api/meter");   // the daemon measures only while one is open
  meterSource.onmessage = (message) => {
    try { showMeter(JSON.parse(message.data)); } catch { /* a partial line: the next one comes soon */ }
  };
}

function closeMeter() {
  if (meterSource) meterSource.close();
  meterSource = null;
}

function showMeter(m) {
  const gauge = $("level-gauge");
  const now = Date.now();
  meterPeak.readings += 1;
  if (m.level_db !== null && (meterPeak.db === null || m.level_db > meterPeak.db)) meterPeak.db = m.level_db;
  for (const [name, score] of Object.entries(m.scores)) meterPeak.scores[name] = Math.max(meterPeak.scores[name] || 0, score);
  if (m.level_db !== null) lastSound = now;
  const db = m.level_db === null ? LEVEL_FLOOR_DB : Math.max(LEVEL_FLOOR_DB, Math.min(0, m.level_db));
  const pct = ((db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB) * 100;
  $("level-rest").style.width = `${100 - pct}%`;
  if (m.level_db !== null && (pct >= levelHold.pct || now - levelHold.at > SCORE_HOLD_MS)) levelHold = { pct, at: now };
  $("level-peak").hidden = now - levelHold.at > SCORE_HOLD_MS || levelHold.pct <= 0;
  $("level-peak").style.left = `${levelHold.pct}%`;
  gauge.setAttribute("aria-valuenow", db.toFixed(0));
  gauge.dataset.db = m.level_db === null ? "" : m.level_db.toFixed(1);
  let text;
  if (m.level_db !== null) text = `${m.level_db.toFixed(0)} dBFS` + (m.level_db < -70 ? " (silence)" : "");
  else if (!m.mic.ok) text = `no sound: no microphone (${m.mic.detail})`;
  else if (["transcribing", "thinking"].includes(m.state)) text = `not listening while ${m.state}`;
  else if (now - lastSound > 1000) text = "no sound reaching voiced";
  else text = $("level-text").textContent;
  $("level-text").textContent = text;
  gauge.classList.toggle("loud", m.level_db !== null && m.level_db > -6);

  const box = $("wake-scores");
  if (m.scored !== "local") {
    box.replaceChildren(el("p", "live-text", "wake word scored by a remote service (no scores to show)"));
    return;
  }
  const rows = m.wake_words.map((name) => {
    const score = m.scores[name];
    const held = scoreHold[name];   // the highest score of the last 2 s stays marked
    if (score !== undefined && (!held || score >= held.score || now - held.at > SCORE_HOLD_MS)) {
      scoreHold[name] = { score, at: now };
    }
    const hold = scoreHold[name] && now - scoreHold[name].at <= SCORE_HOLD_MS ? scoreHold[name].score : null;
    const row = el("div", "score");
    row.dataset.wake = name;
    row.dataset.score = score === undefined ? "" : String(score);
    const track = el("div", "track");
    const fill = el("div", "fill");
    fill.style.width = `${Math.max(0, Math.min(1, score || 0)) * 100}%`;
    const mark = el("div", "threshold");
    mark.style.left = `${m.threshold * 100}%`;
    mark.title = `threshold ${m.threshold}`;
    track.append(fill, mark);
    if (hold !== null) {
      const peak = el("div", "peak");
      peak.style.left = `${Math.max(0, Math.min(1, hold)) * 100}%`;
      peak.title = `highest in the last 2 s: ${hold.toFixed(2)}`;
      track.appendChild(peak);
    }
    row.dataset.hold = hold === null ? "" : String(hold);
    row.classList.toggle("over", score !== undefined && score >= m.threshold);
    row.classList.toggle("fired", hold !== null && hold >= m.threshold);
    row.append(el("span", "name", spoken(name)), track,
               el("span", "value", `${score === undefined ? "–" : score.toFixed(2)} / ${m.threshold}`));
    return row;
  });
  box.replaceChildren(...rows);
}

// --- live events ----------------------------------------------------------------------
let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshStatus, 300);
}

function connectEvents() {
  const source = new EventSource("/api/events");   // reconnects by itself after errors
  source.onmessage = (message) => {
    let ev;
    try { ev = JSON.parse(message.data); } catch { return; }
    if (ev.type === "hello" || ev.type === "state") setState(ev.state);
    else if (ev.type === "transcript") upsertTurn({ id: ev.turn, transcript: ev.text, time: ev.time });
    else if (ev.type === "reply") upsertTurn({ id: ev.turn, reply: ev.text });
    else if (ev.type === "turn") { upsertTurn(ev); refreshSoon(); }
    else if (ev.type === "error") showNotice(`voiced reported an error: ${ev.message || ev.detail || ""}`);
    else if (ev.type === "recovery") refreshSoon();
    if (ev.type === "hello") refreshSoon();
  };
  source.onerror = () => setState("disconnected");
}

// --- the mic button -------------------------------------------------------------------
function pickMimeType() {
  const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
  return wanted.find((t) => MediaRecorder.isTypeSupported(t)) || "";
}

function extensionFor(mime) {
  if (mime.includes("ogg")) return "ogg";
  if (mime.includes("mp4")) return "m4a";
  if (mime.includes("wav")) return "wav";
  return "webm";
}

function updateButton() {
  const button = $("mic-button");
  button.setAttribute("aria-pressed", String(isRecording));
  button.querySelector(".mic-label").textContent = isRecording ? "Stop and send" : "Talk";
  button.setAttribute("aria-label", isRecording ? "Stop recording and send" : "Start recording");
}

function micErrorMessage(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access was denied. Allow it in the browser's site settings, then try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in, or talk to voiced through its own microphone.";
    case "NotReadableError":
      return "The microphone could not be opened (is another program using it?).";
    default:
      return `Could not open the microphone: ${err ? err.message || err.name : "unknown error"}.`;
  }
}

async function startRecording() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof MediaRecorder === "undefined") {
    setMicStatus("This browser cannot record here: use http://127.0.0.1 or https, in a current browser.", true);
    return;
  }
  try {
    micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    setMicStatus(micErrorMessage(err), true);
    return;
  }
  const mimeType = pickMimeType();
  mediaRecorder = new MediaRecorder(micStream, mimeType ? { mimeType } : undefined);
  chunks = [];
  mediaRecorder.ondataavailable = (event) => { if (event.data && event.data.size) chunks.push(event.data); };
  mediaRecorder.onstop = () => {
    const blob = new Blob(chunks, { type: mediaRecorder.mimeType || mimeType || "audio/webm" });
    chunks = [];
    micStream.getTracks().forEach((track) => track.stop());
    sendRecording(blob);
  };
  mediaRecorder.start(250);   // a chunk every 250 ms: a stop loses at most that much
  isRecording = true;
  updateButton();
  setMicStatus("Recording… click again to send.");
}

function stopRecording() {
  isRecording = false;
  updateButton();
  if (mediaRecorder && mediaRecorder.state !== "inactive") mediaRecorder.stop();
}

async function sendRecording(blob) {
  if (!blob.size) {
    setMicStatus("Nothing was recorded; try again.", true);
    return;
  }
  const form = new FormData();
  form.append("audio", blob, `recording.${extensionFor(blob.type)}`);
  busyUploading = true;
  $("mic-button").setAttribute("aria-busy", "true");
  setMicStatus(`Sending ${(blob.size / 1024).toFixed(0)} KB… voiced is transcribing.`);
  try {
    const response = await fetch("/api/utterance", { method: "POST", body: form });
    let data = null;
    try { data = await response.json(); } catch { /* not JSON: reported below */ }
    if (response.status === 409) {
      setMicStatus("voiced is busy with another turn; try again in a moment.", true);
    } else if (!response.ok) {
      setMicStatus(`The request failed (${response.status}): ${(data && data.error) || response.statusText}`, true);
    } else {
      upsertTurn({ id: data.turn, trigger: "browser", time: Date.now() / 1000, transcript: data.transcript,
                   reply: data.reply, outcome: data.outcome }, data.audio_url);
      if (data.transcript) setMicStatus(`Answered in ${data.timings.request.toFixed(1)} s.`);
      else setMicStatus(`Nothing usable was heard (${data.outcome}); try again, closer to the microphone.`, true);
      refreshSoon();
    }
  } catch (err) {
    setMicStatus("Could not reach voiced: is the daemon running?", true);
  } finally {
    busyUploading = false;
    $("mic-button").removeAttribute("aria-busy");
  }
}

// The voice picker: stored voices (GET /api/voices); choosing one makes it the default.
function setVoiceStatus(message, isError = false) {
  const status = $("voice-status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function refreshVoices() {
  // Returns what the page should say about the voices (or null if they could not be read).
  try {
    const response = await fetch("/api/voices", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    const data = await response.json();
    const configured = el("option", "", "configured voice");
    configured.value = "";
    const options = data.voices.map((v) => {
      const option = el("option", "", `${v.name} (${v.seconds.toFixed(0)} s clip)`);
      option.value = v.name;
      return option;
    });
    $("voice-select").replaceChildren(configured, ...options);
    $("voice-select").value = data.default || "";
    let note = "";
    if (!data.voices.length) note = "No stored voices yet: voiced voices add NAME FILE, or POST /api/voices.";
    else if (data.engine && data.engine !== "chatterbox") note = `${data.engine} cannot clone a voice: only its speed and pitch apply.`;
    setVoiceStatus(note);
    return note;
  } catch (err) {
    setVoiceStatus("Could not load the voices.", true);
    return null;
  }
}

async function onVoiceChange() {
  const name = $("voice-select").value || null;
  let message;
  let failed = false;
  try {
    const response = await fetch("/api/voices/default", {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
    });
    let data = null;
    try { data = await response.json(); } catch { /* reported below */ }
    failed = !response.ok;
    message = failed ? `Could not change the voice (${response.status}): ${(data && data.error) || response.statusText}`
                     : `Replies now use ${name || "the configured voice"}.`;
  } catch (err) {
    failed = true;
    message = "Could not reach voiced: is the daemon running?";
  }
  const note = await refreshVoices();
  setVoiceStatus([message, note].filter(Boolean).join(" "), failed);
}

function onMicClick() {
  if (isRecording) {
    stopRecording();
  } else if (busyUploading) {
    setMicStatus("Still working on the last recording…");
  } else {
    startRecording();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("mic-button").addEventListener("click", onMicClick);   // a <button>: Enter and Space work too
  $("voice-select").addEventListener("change", onVoiceChange);
  refreshVoices();
  updateButton();
  refreshStatus();
  connectEvents();
  openMeter();
  document.addEventListener("visibilitychange", () => (document.hidden ? closeMeter() : openMeter()));
  window.addEventListener("pagehide", closeMeter);
  window.addEventListener("pageshow", openMeter);
  setInterval(refreshStatus, 5000);
});
