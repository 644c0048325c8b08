// The monologue web page: duplex chat (/api/chat), live transcription (/api/asr-streaming) and speech
// synthesis (/api/tts_streaming) against `monologue serve --http`. Plain ES modules, no build step, no
// network beyond the server it came from.
import { audioContext, startMicrophone, Player, SAMPLE_RATE } from "./audio.js";
import * as msgpack from "./msgpack.js";
import { OggOpusWriter, OggReader, concat } from "./ogg.js";

const $ = (id) => document.getElementById(id);

// Session counters the page (and the headless browser test, docs/websocket.md) reads.
window.monologue = { chat: { receivedSeconds: 0, sentSeconds: 0, text: "" }, asr: { words: 0, text: "" },
                     tts: { receivedSeconds: 0, words: 0, done: false } };

function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.className = "status " + kind;
}

function socketUrl(path, params = {}) {
  const query = new URLSearchParams();
  const key = $("api-key").value.trim();
  if (key) query.set("auth_id", key); // the Rust server's query parameter (browsers cannot set headers)
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined) query.set(k, v);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const q = query.toString();
  return `${scheme}://${location.host}${path}${q ? "?" + q : ""}`;
}

// Why a socket closed, in words: a refusal before the upgrade (wrong or missing API key: HTTP 401, no
// server) shows up in a browser only as code 1006 without ever opening.
function closeReason(event, opened) {
  if (!opened) return "could not connect: server not reachable, or refused (missing or wrong API key?)";
  if (event.code === 1013) return `server full: ${event.reason || "no free slot"}, try again later`;
  if (event.code === 1000) return event.reason ? `closed: ${event.reason}` : "closed";
  return `connection closed (code ${event.code}${event.reason ? ": " + event.reason : ""})`;
}

// ---------------------------------------------------------------------------------------------- chat
const chat = { socket: null, mic: null, encoder: null, decoder: null, player: null, timer: null };

async function startChat() {
  const status = $("chat-status");
  if (typeof AudioEncoder === "undefined" || typeof AudioDecoder === "undefined") {
    setStatus(status, "this browser has no WebCodecs audio (use Chromium/Chrome 94+, Edge, or Firefox 130+)", "err");
    return;
  }
  const ctx = await audioContext();
  const state = window.monologue.chat;
  Object.assign(state, { receivedSeconds: 0, sentSeconds: 0, text: "" });
  $("chat-text").textContent = "";
  chat.player = new Player(ctx);
  const reader = new OggReader();
  let opened = false;
  let handshake = false;
  let receivedUs = 0;
  let serverError = "";

  chat.decoder = new AudioDecoder({
    output: (data) => {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
      chat.player.play(samples, data.sampleRate);
      state.receivedSeconds = chat.player.seconds;
      data.close();
    },
    error: (e) => setStatus(status, `audio decoder: ${e.message}`, "err"),
  });
  chat.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });

  const socket = new WebSocket(socketUrl("/api/chat", { seed: $("chat-seed").value }));
  socket.binaryType = "arraybuffer";
  chat.socket = socket;
  setStatus(status, "connecting…");
  socket.onopen = () => {
    opened = true;
    setStatus(status, "connected, waiting for the server's handshake (a dialogue slot)…");
  };
  socket.onmessage = async (event) => {
    const bytes = new Uint8Array(event.data);
    if (bytes.length === 0) return;
    const kind = bytes[0];
    const payload = bytes.subarray(1);
    if (kind === 0x00) {
      if (handshake) return;
      handshake = true;
      setStatus(status, "talking: speak into the microphone", "ok");
      try {
        await startChatMicrophone(socket);
      } catch (e) {
        setStatus(status, `microphone: ${e.message}`, "err");
        socket.close();
      }
    } else if (kind === 0x01) {
      let packets;
      try {
        packets = reader.push(payload);
      } catch (e) {
        setStatus(status, `bad audio from the server: ${e.message}`, "err");
        socket.close();
        return;
      }
      for (const p of packets) {
        if (p.header) continue;
        chat.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: receivedUs, data: p.data }));
        receivedUs += 20000; // nominal; the decoder's output carries the real duration
      }
    } else if (kind === 0x02) {
      const piece = new TextDecoder().decode(payload);
      state.text += piece;
      $("chat-text").textContent = state.text;
    } else if (kind === 0x05) {
      // The server's error (server full, bad audio, ...): its close follows.
      serverError = new TextDecoder().decode(payload);
      setStatus(status, `server error: ${serverError}`, "err");
    } else if (kind !== 0x03 && kind !== 0x04 && kind !== 0x06) {
      // 0x03 control, 0x04 metadata, 0x06 ping: nothing to show.
      setStatus(status, `unknown message kind ${kind} from the server`, "err");
    }
  };
  socket.onclose = (event) => {
    const wasActive = chat.socket === socket;
    stopChat(false);
    if (serverError) return; // already shown
    if (wasActive || !opened) setStatus(status, closeReason(event, opened), event.code === 1000 && opened ? "" : "err");
  };
  chat.timer = setInterval(() => {
    $("chat-received").textContent = state.receivedSeconds.toFixed(2);
    $("chat-sent").textContent = state.sentSeconds.toFixed(2);
  }, 100);
  $("chat-start").disabled = true;
  $("chat-stop").disabled = false;
}

async function startChatMicrophone(socket) {
  const state = window.monologue.chat;
  const ogg = new OggOpusWriter(SAMPLE_RATE);
  let granule = 0;
  let samplesIn = 0;
  socket.send(concat([Uint8Array.of(0x01), ogg.headers()]));
  chat.encoder = new AudioEncoder({
    output: (chunk) => {
      const packet = new Uint8Array(chunk.byteLength);
      chunk.copyTo(packet);
      granule += chunk.duration ? Math.round((chunk.duration * 48000) / 1e6) : 960;
      if (socket.readyState === WebSocket.OPEN) socket.send(concat([Uint8Array.of(0x01), ogg.page(packet, granule)]));
    },
    error: (e) => setStatus($("chat-status"), `audio encoder: ${e.message}`, "err"),
  });
  chat.encoder.configure({
    codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1, bitrate: 32000,
    opus: { frameDuration: 20000, complexity: 5 },
  });
  chat.mic = await startMicrophone((block) => {
    if (!chat.encoder || chat.encoder.state !== "configured") return;
    const data = new AudioData({
      format: "f32-planar", sampleRate: SAMPLE_RATE, numberOfChannels: 1, numberOfFrames: block.length,
      timestamp: Math.round((samplesIn * 1e6) / SAMPLE_RATE), data: block,
    });
    samplesIn += block.length;
    state.sentSeconds = samplesIn / SAMPLE_RATE;
    chat.encoder.encode(data);
    data.close();
  });
}

function stopChat(closeSocket = true) {
  if (chat.mic) chat.mic.stop();
  for (const codec of [chat.encoder, chat.decoder]) if (codec && codec.state !== "closed") codec.close();
  const socket = chat.socket;
  Object.assign(chat, { socket: null, mic: null, encoder: null, decoder: null });
  if (closeSocket && socket) {
    socket.close(1000, "user stopped");
    setStatus($("chat-status"), "stopped");
  }
  clearInterval(chat.timer);
  $("chat-start").disabled = false;
  $("chat-stop").disabled = true;
}

// ------------------------------------------------------------------------------------- transcription
const asr = { socket: null, mic: null };

async function startAsr() {
  const status = $("asr-status");
  const state = window.monologue.asr;
  Object.assign(state, { words: 0, text: "" });
  $("asr-text").textContent = "";
  await audioContext();
  let opened = false;
  let pending = [];
  const socket = new WebSocket(socketUrl("/api/asr-streaming"));
  socket.binaryType = "arraybuffer";
  asr.socket = socket;
  setStatus(status, "connecting…");
  socket.onopen = () => {
    opened = true;
    setStatus(status, "connected, waiting for a transcription slot…");
  };
  socket.onmessage = async (event) => {
    let msg;
    try {
      msg = msgpack.decode(event.data);
    } catch (e) {
      setStatus(status, `bad message from the server: ${e.message}`, "err");
      socket.close();
      return;
    }
    if (msg.type === "Ready") {
      setStatus(status, "transcribing: speak into the microphone", "ok");
      try {
        asr.mic = await startMicrophone((block) => {
          pending.push(block);
          if (pending.length < 4) return; // 80 ms (one Mimi frame) per message
          if (socket.readyState === WebSocket.OPEN) {
            socket.send(msgpack.encode({ type: "Audio", pcm: concatFloats(pending) }));
          }
          pending = [];
        });
      } catch (e) {
        setStatus(status, `microphone: ${e.message}`, "err");
        socket.close();
      }
    } else if (msg.type === "Word") {
      state.words += 1;
      state.text += (state.text ? " " : "") + msg.text;
      $("asr-text").textContent = state.text;
      $("asr-words").textContent = state.words;
    } else if (msg.type === "Step") {
      // prs: end-of-turn probabilities of the model's VAD heads (a pause of 0.5 s, 1 s, 2 s, 3 s).
      if (Array.isArray(msg.prs) && msg.prs.length > 2) $("asr-vad").textContent = msg.prs[2].toFixed(2);
    } else if (msg.type === "Error") {
      setStatus(status, `server error: ${msg.message}`, "err");
    }
  };
  socket.onclose = (event) => {
    const wasActive = asr.socket === socket;
    stopAsr(false);
    if (wasActive || !opened) {
      if (!status.classList.contains("err")) setStatus(status, closeReason(event, opened), event.code === 1000 ? "" : "err");
    }
  };
  $("asr-start").disabled = true;
  $("asr-stop").disabled = false;
}

function concatFloats(blocks) {
  const out = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

function stopAsr(closeSocket = true) {
  if (asr.mic) asr.mic.stop();
  const socket = asr.socket;
  Object.assign(asr, { socket: null, mic: null });
  if (closeSocket && socket) {
    socket.close(1000, "user stopped");
    setStatus($("asr-status"), "stopped");
  }
  $("asr-start").disabled = false;
  $("asr-stop").disabled = true;
}

// ---------------------------------------------------------------------------------------- synthesis
async function speak() {
  const status = $("tts-status");
  const text = $("tts-text").value.trim();
  if (!text) {
    setStatus(status, "type some text first", "err");
    return;
  }
  const state = window.monologue.tts;
  Object.assign(state, { receivedSeconds: 0, words: 0, done: false });
  $("tts-words").textContent = "";
  const player = new Player(await audioContext());
  let opened = false;
  let failed = false;
  const socket = new WebSocket(socketUrl("/api/tts_streaming", { format: "PcmMessagePack", voice: $("tts-voice").value.trim() }));
  socket.binaryType = "arraybuffer";
  $("tts-speak").disabled = true;
  setStatus(status, "connecting…");
  socket.onopen = () => {
    opened = true;
    setStatus(status, "synthesizing…", "ok");
    // Word by word, as a client streaming text from a language model would, then end of stream.
    for (const word of text.split(/\s+/)) socket.send(msgpack.encode({ type: "Text", text: word }));
    socket.send(msgpack.encode({ type: "Eos" }));
  };
  socket.onmessage = (event) => {
    let msg;
    try {
      msg = msgpack.decode(event.data);
    } catch (e) {
      failed = true;
      setStatus(status, `bad message from the server: ${e.message}`, "err");
      socket.close();
      return;
    }
    if (msg.type === "Audio") {
      player.play(Float32Array.from(msg.pcm), SAMPLE_RATE);
      state.receivedSeconds = player.seconds;
      $("tts-received").textContent = player.seconds.toFixed(2);
    } else if (msg.type === "Text") {
      state.words += 1;
      const span = document.createElement("span");
      span.textContent = msg.text + " ";
      span.title = `${msg.start_s.toFixed(2)}–${msg.stop_s.toFixed(2)} s`;
      $("tts-words").appendChild(span);
    } else if (msg.type === "Error") {
      failed = true;
      setStatus(status, `server error: ${msg.message}`, "err");
    }
  };
  socket.onclose = (event) => {
    $("tts-speak").disabled = false;
    state.done = true;
    if (failed) return;
    if (opened && (event.code === 1000 || event.code === 1005)) {
      setStatus(status, `done: ${player.seconds.toFixed(2)} s of audio, ${state.words} words`, "ok");
    } else {
      setStatus(status, closeReason(event, opened), "err");
    }
  };
}

$("chat-start").onclick = () => startChat().catch((e) => setStatus($("chat-status"), e.message, "err"));
$("chat-stop").onclick = () => stopChat();
$("asr-start").onclick = () => startAsr().catch((e) => setStatus($("asr-status"), e.message, "err"));
$("asr-stop").onclick = () => stopAsr();
$("tts-speak").onclick = () => speak().catch((e) => setStatus($("tts-status"), e.message, "err"));
