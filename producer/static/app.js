// The producer's bench: upload or pick drums, generate, draw the piano roll, play and download.
// Talks to the JSON routes of producer/serve.py; every file is served by the app itself.
// document.body.dataset.state says where the page is (idle, reading, ready, generating, done,
// error), for people and for the test. While generating, the button says "Working..." and the
// status line and progress bar follow the job (the server's window count with context).
"use strict";

const $ = (id) => document.getElementById(id);
const BASS_LOW = 28, BASS_HIGH = 63, DRUM_ROWS = 14;
const NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
const POLL_MS = 250, POLL_LIMIT = 4 * 60 * 20;  // give up polling after 20 minutes
const bench = {options: null, song: null, job: null, current: 0, geometry: null};
window.bench = bench;

function setState(name) { document.body.dataset.state = name; }

function setStatus(text, progress) {
  $("status").textContent = text || "";
  const bar = $("progress");
  bar.hidden = progress === undefined || progress === null;
  if (!bar.hidden) bar.value = progress;
}

function showError(message, status) {
  const box = $("error");
  box.textContent = message || "";
  box.dataset.status = status ? String(status) : "";
  box.hidden = !message;
  if (message) setState("error");
}

async function api(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const err = new Error(body && body.error ? body.error : `The server answered ${response.status}.`);
    err.status = response.status;
    throw err;
  }
  return body;
}

function failed(err) {
  setStatus("");
  showError(err.message || String(err), err.status || 0);
}

function option(value, text, disabled) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  o.disabled = !!disabled;
  return o;
}

async function init() {
  setState("idle");
  try {
    bench.options = await api("/api/options");
  } catch (err) { failed(err); return; }
  const opts = bench.options;
  for (const m of opts.models) {
    const label = `${m.name} (${m.kind === "trained" ? "trained" : "baseline"})` + (m.available ? "" : ` - ${m.note}`);
    $("model").appendChild(option(m.name, label, !m.available));
  }
  if (opts.default_model) $("model").value = opts.default_model;
  for (const k of opts.keys) $("key").appendChild(option(k, k));
  for (const loop of opts.loops) $("loop").appendChild(option(String(loop.id), loop.name));
  $("variations").max = opts.max_variations;
  if (!opts.audio) { $("audio-note").textContent = opts.audio_note; $("audio-note").hidden = false; }
}

async function upload(file) {
  showError("");
  if (!file) return;
  const max = bench.options ? bench.options.max_bytes : 2 * 1024 * 1024;
  if (file.size > max) {
    showError(`The file is ${file.size.toLocaleString("en")} bytes; the bench takes files up to ${max / 1048576} MB.`,
              413);
    return;
  }
  setState("reading");
  setStatus(`reading ${file.name}...`);
  try {
    const song = await api("/api/upload", {method: "POST", body: file,
      headers: {"X-Filename": encodeURIComponent(file.name), "Content-Type": "application/octet-stream"}});
    setSong(song);
  } catch (err) { failed(err); }
}

async function pickLoop(id) {
  showError("");
  if (id === "") return;
  setState("reading");
  setStatus("reading the loop...");
  try { setSong(await api(`/api/loops/${id}`)); } catch (err) { failed(err); }
}

function setSong(song) {
  bench.song = song;
  bench.job = null;
  $("chords").value = song.chords;
  $("chords-per-bar").value = String(song.chords_per_bar);
  const parts = [`${song.name}: ${song.bars} bars of 4/4 (${song.windows} two-bar windows), ${song.bpm} bpm`,
                 `key ${song.key_estimate}`, `chords ${song.chord_note}`];
  if (song.note) parts.push(song.note);
  $("song-info").textContent = parts.join("; ") + ".";
  $("generate").disabled = false;
  $("variation-tabs").replaceChildren();
  $("download").hidden = true;
  $("audio").removeAttribute("src");
  $("summary").textContent = "";
  setStatus("");
  drawRoll(song, null);
  setState("ready");
}

function form() {
  return {
    song: bench.song.song, model: $("model").value, key: $("key").value, chords: $("chords").value,
    chords_per_bar: Number($("chords-per-bar").value), temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    variations: Number($("variations").value), seed: Number($("seed").value), context: $("context").checked,
    velocity: $("velocity").value, humanize: Number($("humanize").value),
  };
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function generate() {
  if (!bench.song) return;
  showError("");
  $("generate").disabled = true;
  $("generate").textContent = "Working\u2026";
  setState("generating");
  setStatus(`generating ${bench.song.bars} bars...`, 0);
  try {
    let job = await api("/api/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(form())});
    for (let i = 0; i < POLL_LIMIT && (job.state === "queued" || job.state === "running"); i++) {
      setStatus(`${job.status}...`, job.progress);
      await sleep(POLL_MS);
      job = await api(`/api/jobs/${job.id}`);
    }
    if (job.state === "error") throw Object.assign(new Error(job.error), {status: 0});
    if (job.state !== "done") throw new Error("The generation did not finish in 20 minutes.");
    showResult(job);
  } catch (err) {
    failed(err);
  } finally {
    $("generate").disabled = false;
    $("generate").textContent = "Generate";
  }
}

function showResult(job) {
  bench.job = job;
  setStatus(job.status);
  const box = $("variation-tabs");
  box.replaceChildren();
  job.variations.forEach((v, i) => {
    const b = document.createElement("button");
    b.textContent = `Variation ${i + 1}`;
    b.addEventListener("click", () => select(i));
    box.appendChild(b);
  });
  const note = job.audio_note || (bench.options && !bench.options.audio ? bench.options.audio_note : "");
  $("audio-note").textContent = note || "";
  $("audio-note").hidden = !note;
  $("summary").textContent = job.summary;
  select(0);
  setState("done");
}

function select(i) {
  const job = bench.job;
  const v = job.variations[i];
  bench.current = i;
  [...$("variation-tabs").children].forEach((b, j) => b.classList.toggle("active", j === i));
  drawRoll(bench.song, v.notes);
  const audio = $("audio");
  if (v.audio) { audio.src = v.audio; audio.load(); } else { audio.removeAttribute("src"); }
  const link = $("download");
  link.href = v.midi;
  link.download = v.filename;
  link.textContent = `Download variation ${i + 1} (MIDI)`;
  link.hidden = false;
}

function noteName(pitch) { return NAMES[pitch % 12] + (Math.floor(pitch / 12) - 1); }

function drawRoll(song, bass) {
  const canvas = $("roll");
  const ctx = canvas.getContext("2d");
  const left = 46, top = 8, drumH = 5, bassH = 5, gap = 12;
  const quarters = Math.max(song.length, 8);
  const fit = ($("roll-box").clientWidth - left - 12) / quarters;
  const px = fit >= 6 ? fit : Math.min(12, 30000 / quarters);
  const bassTop = top + DRUM_ROWS * drumH + gap;
  canvas.width = Math.ceil(left + quarters * px + 12);
  canvas.height = bassTop + (BASS_HIGH - BASS_LOW + 1) * bassH + 8;
  bench.geometry = {left, px};
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const x = (q) => left + q * px;
  song.window_starts.forEach((start, w) => {  // the 4/4 windows that get a bass line, shaded in turn
    ctx.fillStyle = w % 2 ? "#f4f6fb" : "#eaeef7";
    ctx.fillRect(x(start), 0, 8 * px, canvas.height);
    ctx.fillStyle = "#b8c0d0";
    ctx.fillRect(x(start), 0, 1, canvas.height);
    ctx.fillStyle = "#d4d9e4";
    ctx.fillRect(x(start + 4), 0, 1, canvas.height);
  });
  ctx.fillStyle = "#333";
  ctx.font = "10px sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillText("drums", 4, top + DRUM_ROWS * drumH / 2);
  for (const pitch of [28, 40, 52]) {  // E1, E2, E3
    const y = bassTop + (BASS_HIGH - pitch) * bassH + bassH / 2;
    ctx.fillStyle = "#333";
    ctx.fillText(noteName(pitch), 18, y);
    ctx.fillStyle = "#c8c8c8";
    ctx.fillRect(left - 4, y, canvas.width - left, 1);
  }
  ctx.fillStyle = "#555";
  const hit = Math.max(2, px / 4);
  for (const [q, cls] of song.drums) ctx.fillRect(x(q), top + (DRUM_ROWS - 1 - cls) * drumH, hit, drumH - 1);
  if (!bass) return;
  for (const [start, end, pitch, velocity] of bass) {
    ctx.fillStyle = `rgba(30, 90, 200, ${(0.3 + 0.7 * velocity / 127).toFixed(3)})`;
    ctx.fillRect(x(start), bassTop + (BASS_HIGH - pitch) * bassH, Math.max(2, (end - start) * px - 1), bassH);
  }
}

function quarterAt(seconds, tempos) {
  let q = 0, t = 0, qpm = tempos.length && tempos[0][0] <= 0 ? tempos[0][1] : 120;
  for (const [at, next] of tempos) {
    if (at <= q) { qpm = next; continue; }
    const span = (at - q) * 60 / qpm;
    if (t + span > seconds) break;
    t += span; q = at; qpm = next;
  }
  return q + (seconds - t) * qpm / 60;
}

function movePlayhead() {
  const audio = $("audio"), head = $("playhead");
  if (!bench.song || !bench.geometry || !audio.src) { head.hidden = true; return; }
  head.hidden = false;
  head.style.left = `${bench.geometry.left + quarterAt(audio.currentTime, bench.song.tempos) * bench.geometry.px}px`;
}

$("file").addEventListener("change", (e) => upload(e.target.files[0]));
$("loop").addEventListener("change", (e) => pickLoop(e.target.value));
$("generate").addEventListener("click", generate);
$("audio").addEventListener("timeupdate", movePlayhead);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  upload(e.dataTransfer.files[0]);
});
init();
