#!/usr/bin/env python3
"""Makes the streaming Ogg/Opus fixtures of tests/service/ogg_opus_stream_test.cc with the reference codec.

The reference Python server (moshi.server) and Full-Duplex-Bench's Moshi client both stream Ogg/Opus with
sphn: OpusStreamWriter(24000).append_pcm(1920 samples) per Mimi frame, OpusStreamReader(24000).append_bytes
on the other side. This writes what they produce for the first second of tests/data/asr/speech_en.wav:

  tests/data/audio/ref_sphn_stream_24k.ogg          the bytes sphn's writer emits (every call's bytes, joined)
  tests/data/audio/ref_sphn_stream_24k_messages.txt the byte length of each append_pcm call's output
  tests/data/audio/ref_sphn_stream_24k_decoded.wav  sphn's reader decoding those bytes (16-bit, 24 kHz)

Needs sphn 0.2.x (a dependency of moshi, in the venv scripts/setup.sh makes). Rerun only to regenerate.
"""
import pathlib
import wave

import numpy as np
import sphn

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/data/audio"
FRAME = 1920  # one Mimi frame at 24 kHz, what the reference server hands to append_pcm


def read_wav_24k(path):
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 24000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def write_wav_16bit(path, samples, rate):
    pcm = np.clip(np.round(np.asarray(samples) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def main():
    pcm = read_wav_24k(ROOT / "tests/data/asr/speech_en.wav")[:24000]
    writer = sphn.OpusStreamWriter(24000)
    messages = [writer.append_pcm(pcm[i:i + FRAME]) for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    data = b"".join(messages)
    (OUT / "ref_sphn_stream_24k.ogg").write_bytes(data)
    (OUT / "ref_sphn_stream_24k_messages.txt").write_text("".join(f"{len(m)}\n" for m in messages))
    reader = sphn.OpusStreamReader(24000)
    decoded = np.concatenate([reader.append_bytes(m) for m in messages])
    write_wav_16bit(OUT / "ref_sphn_stream_24k_decoded.wav", decoded, 24000)
    print(f"{len(messages)} messages, {len(data)} bytes; decoded {len(decoded)} samples")


if __name__ == "__main__":
    main()
