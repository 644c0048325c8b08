#!/usr/bin/env bash
# Kyutai's DSM example clients for the Rust moshi-server, unchanged, against `monologue serve --http`
# (docs/websocket.md): scripts/stt_from_file_rust_server.py (/api/asr-streaming) and scripts/tts_rust_server.py
# (/api/tts_streaming) of github.com/kyutai-labs/delayed-streams-modeling at a pinned commit, run with only
# their --url pointed at our HTTP port. The server requires their default API key (public_token), so the key
# check is exercised too. (Full-Duplex-Bench's /api/chat client: scripts/check_fdb_client.sh.)
#
# Checks: the STT client prints a transcript with word times and ends at its Marker; the TTS client writes a
# 24 kHz WAV of the synthesized audio.
#
#   bash scripts/check_kyutai_clients.sh            # tiny random-weight models of tests/data, server started here
# Environment: MONOLOGUE_BUILD_DIR (default build); DSM_SRC = a delayed-streams-modeling checkout (default: the
# two scripts fetched at the pinned commit); KYUTAI_CLIENTS_VENV (default
# ~/.cache/monologue/kyutai-clients-venv): a scratch venv for the clients' Python dependencies from PyPI
# (msgpack numpy sphn websockets tqdm sounddevice; network on first run). tts_rust_server.py imports
# sounddevice, which needs the PortAudio library (Debian: libportaudio2). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUILD="${MONOLOGUE_BUILD_DIR:-build}"
DSM_COMMIT=f6074cb684fcf3c46161f1c3abda3c0805e10d18
VENV="${KYUTAI_CLIENTS_VENV:-$HOME/.cache/monologue/kyutai-clients-venv}"
log() { printf '[check_kyutai_clients] %s\n' "$*" >&2; }

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the clients and their dependencies
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check msgpack numpy sphn websockets tqdm sounddevice
if ! ldconfig -p | grep -q libportaudio; then
  log "tts_rust_server.py imports sounddevice, which needs PortAudio: apt-get install libportaudio2"
  exit 1
fi
for s in stt_from_file_rust_server.py tts_rust_server.py; do
  if [[ -n "${DSM_SRC:-}" ]]; then
    cp "$DSM_SRC/scripts/$s" "$WORK/$s"
  else
    curl -fsSL -o "$WORK/$s" "https://raw.githubusercontent.com/kyutai-labs/delayed-streams-modeling/$DSM_COMMIT/scripts/$s"
  fi
done
PY="$VENV/bin/python"

# --- the server: tiny STT and TTS models, the clients' default API key
"$BUILD/monologue" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --api-key public_token \
  --stt "$ROOT/tests/data/asr/tiny-stt" --tts "$ROOT/tests/data/tts/tiny-tts" --voices "$ROOT/tests/data/tts/voices" \
  --default-voice alice --threads 1 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 300); do
  grep -q "http on" "$WORK/serve.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
  sleep 0.1
done
HTTP="$(sed -n 's/.*http on //p' "$WORK/serve.out")"
log "server up: ws://$HTTP"

# --- STT: a 4.6 s clip, fed at 4x real time (the client's --rtf)
log "stt_from_file_rust_server.py tests/data/asr/speech_en.wav"
(cd "$WORK" && timeout 300 "$PY" stt_from_file_rust_server.py "$ROOT/tests/data/asr/speech_en.wav" \
  --url "ws://$HTTP" --rtf 4) | tee "$WORK/stt.log"
words=$(grep -cE '^ *[0-9]+\.[0-9]+ - *[0-9]+\.[0-9]+  ' "$WORK/stt.log" || true)
[[ "$words" -gt 0 ]] || { log "FAIL: no timed words from the STT client"; exit 1; }
log "STT client: $words timed words"

# --- TTS: one line of text, voice by name (resolved under --voices)
echo "Hello world, this is monologue speaking through the Rust server protocol." >"$WORK/text.txt"
log "tts_rust_server.py text.txt out.wav --voice alice"
(cd "$WORK" && timeout 300 "$PY" tts_rust_server.py text.txt out.wav --url "ws://$HTTP" --voice alice) 2>&1 |
  tr '\r' '\n' | grep -v "^Receiving audio" | tee "$WORK/tts.log"
"$PY" - "$WORK/out.wav" <<'PYEOF'
import sys
import sphn
pcm, sr = sphn.read(sys.argv[1])
assert sr == 24000 and pcm.shape[0] == 1 and pcm.shape[1] > 0, (pcm.shape, sr)
print(f"[check_kyutai_clients] TTS client: {pcm.shape[1]} samples = {pcm.shape[1] / sr:.2f} s at {sr} Hz, "
      f"peak {abs(pcm).max():.3f}", file=sys.stderr)
PYEOF
log "OK"
