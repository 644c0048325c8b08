// Microphone capture at 24 kHz (AudioWorklet) and gap-free playback of received PCM.

export const SAMPLE_RATE = 24000;

let sharedContext = null;

// One AudioContext at 24 kHz (Mimi's rate) for capture and playback; the browser resamples the device.
export async function audioContext() {
  if (!sharedContext) {
    sharedContext = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
    await sharedContext.audioWorklet.addModule("mic-worklet.js");
    globalThis.monologueAudioContext = sharedContext; // for scripts/check_web_page.sh: is playback running?
  }
  if (sharedContext.state === "suspended") await sharedContext.resume();
  return sharedContext;
}

// Calls onBlock(Float32Array of 480 samples) for every 20 ms of microphone audio until stop().
export async function startMicrophone(onBlock) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("no microphone access here: the page must be opened over https:// or on localhost");
  }
  const ctx = await audioContext();
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
  });
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "mic-capture");
  node.port.onmessage = (e) => onBlock(e.data);
  source.connect(node);
  return {
    stop() {
      node.port.onmessage = null;
      source.disconnect();
      node.disconnect();
      for (const track of stream.getTracks()) track.stop();
    },
  };
}

// Plays PCM chunks back to back; `seconds` counts what it was given.
export class Player {
  constructor(ctx) {
    this.ctx = ctx;
    this.next = 0;
    this.seconds = 0;
  }
  play(samples, sampleRate) {
    if (samples.length === 0) return;
    this.seconds += samples.length / sampleRate;
    const buffer = this.ctx.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    // A small cushion when starting (or after running dry) absorbs network jitter.
    const now = this.ctx.currentTime;
    if (this.next < now) this.next = now + 0.08;
    source.start(this.next);
    this.next += buffer.duration;
  }
}
