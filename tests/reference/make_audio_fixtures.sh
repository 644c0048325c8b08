#!/usr/bin/env bash
# Makes the small audio fixtures in tests/data/audio/ used by tests/audio/*_test.cc.
#
# One espeak-ng utterance (~1.4 s) is rendered once and converted with sox / ffmpeg into the containers and
# codecs the decoder must handle. Encoders run single-threaded with bit-exact flags and no metadata so the
# files are reproducible with the same tool versions (espeak-ng 1.51, SoX 14.4.2, FFmpeg 5.1 here).
# The files are committed; rerun only to regenerate them.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=tests/data/audio
mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

FF=(ffmpeg -nostdin -hide_banner -loglevel error -y -threads 1)
BITEXACT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

# espeak-ng writes 22.05 kHz mono 16-bit; fixed voice, speed and pitch.
espeak-ng -v en-us -s 170 -p 50 -a 120 -w "$TMP/raw.wav" "Hello from monologue, testing audio."
# Trim to 1.4 s of speech (skip the leading silence) and normalise the peak to -1 dBFS.
sox -R -D "$TMP/raw.wav" "$TMP/base.wav" trim 0.05 1.4 gain -n -1

# 1. WAV, 16 kHz mono, 16-bit PCM: the reference every other codec is compared with.
sox -R -D "$TMP/base.wav" -r 16000 -b 16 -c 1 "$OUT/speech_16k_mono.wav" rate -v
# 2. FLAC from exactly the same 16 kHz samples (lossless: must decode identically to the WAV).
"${FF[@]}" -i "$OUT/speech_16k_mono.wav" "${BITEXACT[@]}" -c:a flac "$OUT/speech_16k.flac"
# 3. MP3 (LAME, 32 kb/s CBR, 16 kHz: MPEG-2 layer III; LAME/Xing header carries the encoder delay).
"${FF[@]}" -i "$OUT/speech_16k_mono.wav" "${BITEXACT[@]}" -c:a libmp3lame -b:a 32k "$OUT/speech_16k.mp3"
# 4. Ogg/Opus (libopus, 24 kb/s; Opus always codes at 48 kHz internally, pre-skip in OpusHead). 100 ms
#    pages (FFmpeg defaults to 1 s) so a truncated copy still holds complete pages.
"${FF[@]}" -i "$OUT/speech_16k_mono.wav" "${BITEXACT[@]}" -c:a libopus -b:a 24k -page_duration 100000 "$OUT/speech.opus"
# 5. Ogg/Vorbis (libvorbis, quality 2), 100 ms pages.
"${FF[@]}" -i "$OUT/speech_16k_mono.wav" "${BITEXACT[@]}" -c:a libvorbis -q:a 2 -page_duration 100000 "$OUT/speech_16k_vorbis.ogg"
# 6. M4A/AAC (FFmpeg's native AAC encoder, 32 kb/s; priming samples are trimmed via the edit list).
"${FF[@]}" -i "$OUT/speech_16k_mono.wav" "${BITEXACT[@]}" -c:a aac -b:a 32k "$OUT/speech_16k_aac.m4a"
# 7. WAV 44.1 kHz stereo with different content per channel: left = speech, right = a 440 Hz tone at
#    0.3 amplitude. Only 0.25 s to stay under 50 KB (44.1 kHz x 2 ch x 2 B = 176 kB/s).
sox -R -D "$TMP/base.wav" -r 44100 -b 16 -c 1 "$TMP/left.wav" rate -v trim 0.3 0.25
sox -R -D -n -r 44100 -b 16 -c 1 "$TMP/right.wav" synth 0.25 sine 440 vol 0.3
sox -R -D -M "$TMP/left.wav" "$TMP/right.wav" -b 16 "$OUT/speech_44k_stereo.wav"

# 8. What the reference loads: moshi reads audio with sphn.read(path, sample_rate=24000) and averages the
#    channels. Stored as 32-bit float WAV so the C++ tests can compare our decoder with it (sphn's
#    resampler delays the signal and pads the end, so the comparison aligns first). Needs sphn 0.2.x in
#    the venv (a dependency of moshi; pip install "sphn>=0.2,<0.3").
PY="${MONOLOGUE_PYTHON:-$HOME/.cache/monologue/venv/bin/python}"
"$PY" - "$OUT" <<'PYEOF'
import struct
import sys

import numpy as np
import sphn

out = sys.argv[1]


def write_float_wav(path, samples, rate):
    data = np.asarray(samples, dtype="<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 4 + 26 + 12 + 8 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHHH", 18, 3, 1, rate, 4 * rate, 4, 32, 0)
    header += b"fact" + struct.pack("<II", 4, len(samples))
    header += b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(header + data)


for src, dst in [("speech_16k_mono.wav", "ref_sphn_speech_24k.wav"),
                 ("speech_44k_stereo.wav", "ref_sphn_stereo_mean_24k.wav")]:
    pcm, rate = sphn.read(f"{out}/{src}", sample_rate=24000)
    assert rate == 24000
    write_float_wav(f"{out}/{dst}", pcm.mean(axis=0), 24000)
    print(dst, pcm.shape)
PYEOF

ls -l "$OUT"
du -ch "$OUT"/* | tail -1
