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
  li.appendChild(el("div", "meta", [when, sourceLabel(d.trigger)].filter(Boolean).join(" · ")));
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
  }
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
  setInterval(refreshStatus, 5000);
});
