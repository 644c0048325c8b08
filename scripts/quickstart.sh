#!/usr/bin/env bash
# Fresh machine to a running monologue: set up, build, then exercise the main jobs on a sample. When the
# Hugging Face Hub is reachable, the real default models (kyutai/stt-1b-en_fr, kyutai/tts-1.6b-en_fr and its
# default voice) are downloaded into the Hugging Face cache and used, and the script says so; when it is not
# (or with MONOLOGUE_QUICKSTART_TINY=1), tiny random-weight models in the released layout stand in (the same
# commands, random words and noise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD_DIR="${MONOLOGUE_BUILD_DIR:-build}"
BIN="$BUILD_DIR/monologue"
OUT="$BUILD_DIR/quickstart"
mkdir -p "$OUT"
run() { printf '\n$ %s\n' "$*" >&2; "$@"; }
say() { printf '\n[quickstart] %s\n' "$*" >&2; }

# `monologue download` fetches config.json and the files it names (a no-op when cached); it fails fast,
# with one sentence, when the Hub cannot be reached.
REAL=0
if [[ "${MONOLOGUE_QUICKSTART_TINY:-0}" != 1 ]]; then
  say "trying the Hugging Face Hub (${HF_ENDPOINT:-https://huggingface.co}) for the real default models"
  if STT_SNAPSHOT="$("$BIN" download kyutai/stt-1b-en_fr)" && "$BIN" download kyutai/tts-1.6b-en_fr >/dev/null; then
    REAL=1
  fi
fi

if ((REAL)); then
  say "the Hub is reachable: running the REAL models kyutai/stt-1b-en_fr and kyutai/tts-1.6b-en_fr (cached in ${HF_HUB_CACHE:-${HF_HOME:-~/.cache/huggingface}/hub})"
  run "$BIN" info "$STT_SNAPSHOT"
  # The model's own Mimi (and its config when the model names one), as `info --json` resolves them.
  mapfile -t MIMI < <("$BIN" info "$STT_SNAPSHOT" --json | python3 -c '
import json, sys
files = {f["role"]: f.get("path") for f in json.load(sys.stdin)["files"]}
print("--mimi"); print(files["mimi weights"])
if files.get("mimi config"): print("--mimi-config"); print(files["mimi config"])')
  MODEL_ARGS=(--hf-repo kyutai/stt-1b-en_fr)
  TTS_ARGS=(--hf-repo kyutai/tts-1.6b-en_fr)  # default voice fetched from kyutai/tts-voices
else
  say "the Hub is not reachable (or MONOLOGUE_QUICKSTART_TINY=1): using tiny RANDOM-weight models instead"
  MODEL="$OUT/tiny-stt"
  if [[ ! -f "$MODEL/config.json" ]]; then
    run "$BUILD_DIR/monologue-make-model" --preset tiny-stt --dtype f32 \
      --tokenizer tests/data/tokenizers/tiny_en_fr_400.model --out "$MODEL"
  fi
  run "$BIN" info "$MODEL"
  MIMI=(--mimi "$MODEL/mimi.safetensors" --mimi-config "$MODEL/mimi_config.json")
  MODEL_ARGS=(--model "$MODEL")
  # Speech synthesis with a tiny random-weight TTS model (it writes a random voice under voices/).
  TTS="$OUT/tiny-tts"
  if [[ ! -f "$TTS/config.json" ]]; then
    run "$BUILD_DIR/monologue-make-model" --preset tiny-tts --dtype f32 \
      --tokenizer tests/data/tokenizers/tiny_en_fr_400.model --out "$TTS"
  fi
  TTS_ARGS=(--model "$TTS" --voices "$TTS/voices" --voice random)
fi
run "$BIN" codec encode samples/audio/hello_en.wav -o "$OUT/hello.codes.safetensors" "${MIMI[@]}"
run "$BIN" codec decode "$OUT/hello.codes.safetensors" -o "$OUT/hello.decoded.wav" "${MIMI[@]}"
run "$BIN" transcribe samples/audio/hello_en.wav "${MODEL_ARGS[@]}" --format json -o "$OUT/hello.json"
run "$BIN" synthesize "Hello from monologue, this is streaming speech synthesis." "${TTS_ARGS[@]}" \
  -o "$OUT/hello.tts.wav" --words-out "$OUT/hello.tts.words.json"
echo >&2
if ((REAL)); then
  echo "quickstart done with the real models: outputs in $OUT" >&2
else
  echo "quickstart done: outputs in $OUT (random weights: the transcript is random words, the speech is noise)" >&2
fi
