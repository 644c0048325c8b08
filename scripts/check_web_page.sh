#!/usr/bin/env bash
# The web page of `monologue serve --http` in real headless Chromium (docs/websocket.md, "The web page"):
# a fake microphone fed from a WAV file, then the page's three panels driven as a person would:
#   chat           connects to /api/chat, Moshi's audio is decoded and played (received-audio counter moves,
#                  the page's AudioContext is running and its clock advances)
#   transcription  /api/asr-streaming gives words
#   speak          /api/tts_streaming returns audio and words
# and a screenshot of each into docs/ (web-chat.png, web-transcription.png, web-speak.png).
#
# Needs Debian's chromium and chromium-driver, curl and jq; no Python. The driver talks W3C WebDriver to
# chromedriver over HTTP with curl. Not part of ctest: it needs a browser and takes ~1 minute.
#
#   bash scripts/check_web_page.sh                    # tiny random-weight models, server started here
#   bash scripts/check_web_page.sh --url http://H:P/  # an already running server (its real models)
# Environment: MONOLOGUE_BUILD_DIR (default build), MIC_WAV (default tests/data/asr/speech_en.wav),
# SHOTS (default docs; empty = no screenshots), TIMEOUT_S per panel (default 60), PANELS (default
# "chat transcription speak": the panels to check).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUILD="${MONOLOGUE_BUILD_DIR:-build}"
MIC_WAV="$(realpath "${MIC_WAV:-tests/data/asr/speech_en.wav}")"
SHOTS="${SHOTS-docs}"
TIMEOUT_S="${TIMEOUT_S:-60}"
PANELS=" ${PANELS:-chat transcription speak} "
URL=""
[[ "${1:-}" == "--url" ]] && URL="$2"

for tool in chromium chromedriver curl jq; do
  command -v "$tool" >/dev/null || { echo "check_web_page: needs $tool (apt-get install chromium chromium-driver curl jq)" >&2; exit 2; }
done

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '[check_web_page] %s\n' "$*" >&2; }
free_port() {  # a port nothing listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

if [[ -z "$URL" ]]; then
  [[ -x "$BUILD/monologue" ]] || { echo "check_web_page: $BUILD/monologue not built (scripts/build.sh)" >&2; exit 2; }
  log "making a tiny dialogue model (random weights)"
  "$BUILD/monologue-make-model" --preset tiny-moshi-8 --dtype f32 --seed 0 \
    --tokenizer tests/data/tokenizers/tiny_en_fr_400.model --out "$WORK/tiny-moshi" >/dev/null
  HTTP_PORT="$(free_port)"
  "$BUILD/monologue" serve --listen 127.0.0.1:0 --http "127.0.0.1:$HTTP_PORT" \
    --stt tests/data/asr/tiny-stt \
    --tts tests/data/tts/tiny-tts --voices tests/data/tts/voices --default-voice alice \
    --dialogue "$WORK/tiny-moshi" --threads 1 >"$WORK/serve.log" 2>&1 &
  PIDS+=($!)
  URL="http://127.0.0.1:$HTTP_PORT/"
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "$URL" && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$WORK/serve.log" >&2; echo "check_web_page: serve exited" >&2; exit 1; }
    sleep 0.5
  done
  curl -sf -o /dev/null "$URL" || { cat "$WORK/serve.log" >&2; echo "check_web_page: no page at $URL" >&2; exit 1; }
  log "server up at $URL"
fi

DRIVER_PORT="$(free_port)"
chromedriver --port="$DRIVER_PORT" >"$WORK/chromedriver.log" 2>&1 &
PIDS+=($!)
WD="http://127.0.0.1:$DRIVER_PORT"
for _ in $(seq 1 50); do curl -sf "$WD/status" >/dev/null && break; sleep 0.2; done

# POST/GET to WebDriver; prints the JSON "value", fails on a WebDriver error.
wd() {
  local method="$1" path="$2" body="${3:-}" out
  if [[ "$method" == GET ]]; then out="$(curl -s "$WD$path")"; else out="$(curl -s -X "$method" -H 'Content-Type: application/json' -d "${body:-{\}}" "$WD$path")"; fi
  if jq -e '.value | objects | has("error")' <<<"$out" >/dev/null 2>&1; then
    echo "check_web_page: WebDriver $method $path: $(jq -r '.value.error + ": " + .value.message' <<<"$out" | head -3)" >&2
    return 1
  fi
  jq -c '.value' <<<"$out"
}
js() {  # runs a JavaScript function body in the page; prints its return value as JSON
  wd POST "/session/$SESSION/execute/sync" "$(jq -cn --arg s "$1" '{script: $s, args: []}')"
}
shot() {
  [[ -n "$SHOTS" ]] || return 0
  mkdir -p "$SHOTS"
  wd GET "/session/$SESSION/screenshot" | jq -r . | base64 -d >"$SHOTS/$1"
  log "screenshot $SHOTS/$1"
}
# Polls a JavaScript expression until it is true; prints the page state on timeout.
wait_for() {
  local what="$1" expr="$2"
  for _ in $(seq 1 $((TIMEOUT_S * 4))); do
    [[ "$(js "return Boolean($expr);")" == true ]] && return 0
    sleep 0.25
  done
  echo "check_web_page: timed out waiting for $what; page state: $(js 'return window.monologue;')" >&2
  echo "statuses: $(js 'return [...document.querySelectorAll(".status")].map(e => e.textContent);')" >&2
  return 1
}

caps="$(jq -cn --arg wav "$MIC_WAV" '{capabilities: {alwaysMatch: {browserName: "chrome",
  "goog:chromeOptions": {binary: "/usr/bin/chromium", args: ["--headless=new", "--no-sandbox",
    "--disable-dev-shm-usage", "--window-size=1280,860", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", ("--use-file-for-fake-audio-capture=" + $wav),
    "--autoplay-policy=no-user-gesture-required"]}}}}')"
SESSION="$(wd POST /session "$caps" | jq -r .sessionId)"
log "chromium session $SESSION; mic = $MIC_WAV"
wd POST "/session/$SESSION/url" "$(jq -cn --arg u "$URL" '{url: $u}')" >/dev/null
wait_for "the page's script" 'window.monologue && document.getElementById("chat-start")'

FAILED=0
panel() {  # name, start expression, done condition, screenshot, stop expression
  local name="$1" start="$2" done_cond="$3" png="$4" stop="$5"
  [[ "$PANELS" == *" $name "* ]] || return 0
  log "$name: starting"
  js "$start; return true;" >/dev/null
  if wait_for "$name" "$done_cond"; then
    log "$name: ok: $(js 'return window.monologue;'), audio clock $(js 'return [monologueAudioContext.state, monologueAudioContext.currentTime];')"
  else
    FAILED=1
  fi
  shot "$png"
  [[ -n "$stop" ]] && js "$stop; return true;" >/dev/null
  return 0
}

panel chat 'document.getElementById("chat-start").click()' \
  'window.monologue.chat.receivedSeconds > 2 && window.monologue.chat.sentSeconds > 2 && monologueAudioContext.state === "running" && monologueAudioContext.currentTime > 2' \
  web-chat.png 'document.getElementById("chat-stop").click()'
panel transcription 'document.getElementById("asr-start").click()' \
  'window.monologue.asr.words >= 3' web-transcription.png 'document.getElementById("asr-stop").click()'
panel speak 'document.getElementById("tts-text").value = "Hello from the web page, this is a test of speech synthesis."; document.getElementById("tts-speak").click()' \
  'window.monologue.tts.done && window.monologue.tts.receivedSeconds > 0.5' web-speak.png ''
errors="$(js 'return [...document.querySelectorAll(".status.err")].map(e => e.parentElement.id + ": " + e.textContent);')"
[[ "$errors" == "[]" ]] || { echo "check_web_page: the page shows errors: $errors" >&2; FAILED=1; }
wd DELETE "/session/$SESSION" >/dev/null || true
if ((FAILED)); then
  [[ -f "$WORK/serve.log" ]] && tail -20 "$WORK/serve.log" >&2
  echo "check_web_page: FAILED" >&2
  exit 1
fi
echo "check_web_page: ok (chat audio plays, transcription words appear, speech synthesized)"
