// AudioWorklet: the microphone's samples (already at the AudioContext's 24 kHz) posted to the page in
// 20 ms blocks (480 samples), the unit the Opus encoder and the MessagePack "Audio" messages take.
class MicCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(480);
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        this.block[this.filled++] = channel[i];
        if (this.filled === this.block.length) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(480);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("mic-capture", MicCapture);
