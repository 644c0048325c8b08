#!/usr/bin/env bash
# Fresh machine to a running monologue: set up, build, then exercise the main jobs on a sample with a tiny
# random-weight model in the released layout (no real weights can be downloaded here; with a real model
# directory the same commands give real results).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD_DIR="${MONOLOGUE_BUILD_DIR:-build}"
BIN="$BUILD_DIR/monologue"
OUT="$BUILD_DIR/quickstart"
MODEL="$OUT/tiny-stt"
mkdir -p "$OUT"
run() { printf '\n$ %s\n' "$*" >&2; "$@"; }

if [[ ! -f "$MODEL/config.json" ]]; then
  run "$BUILD_DIR/monologue-make-model" --preset tiny-stt --dtype f32 \
    --tokenizer tests/data/tokenizers/tiny_en_fr_400.model --out "$MODEL"
fi
run "$BIN" info "$MODEL"
MIMI=(--mimi "$MODEL/mimi.safetensors" --mimi-config "$MODEL/mimi_config.json")
run "$BIN" codec encode samples/audio/hello_en.wav -o "$OUT/hello.codes.safetensors" "${MIMI[@]}"
run "$BIN" codec decode "$OUT/hello.codes.safetensors" -o "$OUT/hello.decoded.wav" "${MIMI[@]}"
run "$BIN" transcribe samples/audio/hello_en.wav --model "$MODEL" --format json -o "$OUT/hello.json"

# Speech synthesis with a tiny random-weight TTS model (it writes a random voice under voices/).
TTS="$OUT/tiny-tts"
if [[ ! -f "$TTS/config.json" ]]; then
  run "$BUILD_DIR/monologue-make-model" --preset tiny-tts --dtype f32 \
    --tokenizer tests/data/tokenizers/tiny_en_fr_400.model --out "$TTS"
fi
run "$BIN" synthesize "Hello from monologue, this is streaming speech synthesis." --model "$TTS" \
  --voices "$TTS/voices" --voice random -o "$OUT/hello.tts.wav" --words-out "$OUT/hello.tts.words.json"
echo >&2
echo "quickstart done: outputs in $OUT (random weights: the transcript is random words, the speech is noise)" >&2
