#!/usr/bin/env bash
# Full-Duplex-Bench v1.5's Moshi client, unchanged, against `monologue serve --http` (docs/websocket.md).
#
# The client is v1_v1.5/model_inference/moshi/inference.py of github.com/DanielLin94144/Full-Duplex-Bench
# (pinned below). As its README says, only the configuration block at its top is edited (root_dir_path,
# tasks, prefix, overwrite); it is then run with --server_ip pointing at our HTTP port. It streams each
# <task>/<id>/input.wav in 80 ms Ogg/Opus frames in real time over /api/chat and writes output.wav: Moshi's
# audio, time-aligned with the input (same length, one frame of lead-in), which the benchmark then scores.
#
# Checks: every output.wav exists, is 24 kHz mono, has exactly the input's length at 24 kHz, and holds the
# server's audio (not silence) after the first frame, over more than half of the rest (the client pads
# with zeros what did not arrive before it closed); the coverage is printed.
#
#   bash scripts/check_fdb_client.sh                   # tiny random-weight dialogue model, server started here
#   bash scripts/check_fdb_client.sh --url HOST:PORT   # an already running serve --http
# Environment: MONOLOGUE_BUILD_DIR (default build); FDB_SRC = a Full-Duplex-Bench checkout (default: fetched
# at the pinned commit); FDB_VENV (default ~/.cache/monologue/fdb-venv).
#
# Python dependencies (network on first run): websockets, soundfile, sphn<0.2 (the client calls the 0.1 API,
# OpusStreamReader.read_pcm; with sphn 0.2 it would silently write silence), and torch + torchaudio (it
# imports torchaudio to resample). torch is taken from monologue's venv (scripts/setup.sh) when present, so
# only torchaudio of the same version is added; else both come from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUILD="${MONOLOGUE_BUILD_DIR:-build}"
FDB_COMMIT=d7336bda1385872b83b48a8d45d9c0003836a60d
FDB_VENV="${FDB_VENV:-$HOME/.cache/monologue/fdb-venv}"
MONOLOGUE_VENV="${MONOLOGUE_HOME:-$HOME/.cache/monologue}/venv"
SERVER=""
[[ "${1:-}" == "--url" ]] && SERVER="$2"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '[check_fdb_client] %s\n' "$*" >&2; }
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# --- the client's Python environment
if [[ ! -x "$FDB_VENV/bin/python" ]]; then
  log "creating $FDB_VENV"
  python3 -m venv "$FDB_VENV"
  if [[ -x "$MONOLOGUE_VENV/bin/python" ]] && "$MONOLOGUE_VENV/bin/python" -c 'import torch' 2>/dev/null; then
    site="$("$FDB_VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
    "$MONOLOGUE_VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])' >"$site/monologue_venv.pth"
    torch_version="$("$MONOLOGUE_VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
    "$FDB_VENV/bin/pip" install -q --disable-pip-version-check --no-deps "torchaudio==$torch_version"
  else
    "$FDB_VENV/bin/pip" install -q --disable-pip-version-check torch torchaudio
  fi
  "$FDB_VENV/bin/pip" install -q --disable-pip-version-check websockets soundfile "sphn<0.2" numpy
fi
PY="$FDB_VENV/bin/python"

# --- the client, configured as its README says
if [[ -n "${FDB_SRC:-}" ]]; then
  cp "$FDB_SRC/v1_v1.5/model_inference/moshi/inference.py" "$WORK/inference.py"
else
  log "fetching Full-Duplex-Bench at $FDB_COMMIT"
  git init -q "$WORK/fdb-src"
  git -C "$WORK/fdb-src" fetch -q --depth 1 https://github.com/DanielLin94144/Full-Duplex-Bench "$FDB_COMMIT"
  git -C "$WORK/fdb-src" show "FETCH_HEAD:v1_v1.5/model_inference/moshi/inference.py" >"$WORK/inference.py"
fi
# root_dir_path: the client joins it with "/" (a str, as the README's placeholder, fails there) and then
# hands the result to glob.glob (a pathlib.Path fails there on Python 3.11: 'PosixPath' object is not
# subscriptable). A str that also supports "/" satisfies both, and only the configuration line changes.
ROOT_DIR_VALUE="type(\"RootDir\", (str,), {\"__truediv__\": lambda self, other: type(self)(f\"{self}/{other}\")})(\"$WORK/data\")"
sed -i -e "s|^root_dir_path = .*|root_dir_path = $ROOT_DIR_VALUE|" \
       -e 's|^    "YOUR_TASK_NAME",|    "smoke",|' "$WORK/inference.py"
grep -q "^root_dir_path = type(\"RootDir\"" "$WORK/inference.py" && grep -q '"smoke",' "$WORK/inference.py" ||
  { echo "check_fdb_client: the client's configuration block changed; update this script" >&2; exit 1; }

# --- inputs: a 24 kHz clip and a 16 kHz one (the client resamples that one with torchaudio)
mkdir -p "$WORK/data/smoke/1" "$WORK/data/smoke/2"
cp tests/data/asr/speech_en.wav "$WORK/data/smoke/1/input.wav"
cp tests/data/audio/speech_16k_mono.wav "$WORK/data/smoke/2/input.wav"

# --- the server
if [[ -z "$SERVER" ]]; then
  [[ -x "$BUILD/monologue" ]] || { echo "check_fdb_client: $BUILD/monologue not built (scripts/build.sh)" >&2; exit 2; }
  log "making a tiny dialogue model (random weights)"
  "$BUILD/monologue-make-model" --preset tiny-moshi-8 --dtype f32 --seed 0 \
    --tokenizer tests/data/tokenizers/tiny_en_fr_400.model --out "$WORK/tiny-moshi" >/dev/null
  port="$(free_port)"
  "$BUILD/monologue" serve --listen 127.0.0.1:0 --http "127.0.0.1:$port" --dialogue "$WORK/tiny-moshi" \
    --threads 1 >"$WORK/serve.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.5
  done
  SERVER="127.0.0.1:$port"
  log "server up at $SERVER"
fi

log "running the client (real time: as long as the inputs)"
(cd "$WORK" && "$PY" inference.py --server_ip "$SERVER") 2>&1 | tee "$WORK/client.log" | grep -v '^\[TEXT\]' >&2
log "text pieces printed by the client: $(grep -c '^\[TEXT\]' "$WORK/client.log" || true)"

"$PY" - "$WORK/data/smoke" <<'PYEOF'
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

failed = False
for sample in sorted(Path(sys.argv[1]).iterdir()):
    inp, out = sample / "input.wav", sample / "output.wav"
    if not out.exists():
        print(f"{sample.name}: no output.wav"); failed = True; continue
    info_in, info_out = sf.info(str(inp)), sf.info(str(out))
    expected = round(info_in.frames * 24000 / info_in.samplerate)
    audio, sr = sf.read(str(out), dtype="float32")
    speech = np.abs(audio[1920:]).max() if len(audio) > 1920 else 0.0
    # The client pads the end with zeros when the server's audio stops short (it closes 0.5 s after its
    # last frame): how much of the output after the lead-in frame is the server's.
    nonzero = np.flatnonzero(audio)
    covered = (nonzero[-1] + 1 - 1920) / max(len(audio) - 1920, 1) if len(nonzero) else 0.0
    ok = (sr == 24000 and info_out.channels == 1 and abs(len(audio) - expected) <= 1 and speech > 1e-3
          and covered > 0.5)
    print(f"{sample.name}: input {info_in.frames} samples at {info_in.samplerate} Hz -> output {len(audio)} "
          f"at {sr} Hz (expected {expected}), peak after the first frame {speech:.3f}, server audio covers "
          f"{100 * covered:.0f}% after it: {'ok' if ok else 'BAD'}")
    failed |= not ok
sys.exit(1 if failed else 0)
PYEOF
echo "check_fdb_client: ok (Full-Duplex-Bench's Moshi client wrote time-aligned output.wav files)"
