#!/usr/bin/env bash
# One-time (and idempotent) set-up of everything monologue needs on a fresh Debian 12 machine:
#   - Debian dev packages (FFmpeg, sentencepiece, gRPC/protobuf, Abseil, GoogleTest, CLI11, nlohmann-json, libcurl,
#     ccache, and the audio tools the tests use to make fixtures: espeak-ng, sox, ffmpeg);
#   - a Python virtual environment holding the pinned torch wheel (its bundled libtorch and CMake config
#     is what the C++ build links against) and the reference `moshi` package (fixture generation only).
# Re-running it when everything is present takes a few seconds.
#
# Environment:
#   MONOLOGUE_HOME   where the virtual environment lives (default: ~/.cache/monologue)
#   MONOLOGUE_SKIP_APT=1   do not touch Debian packages (e.g. on the GPU machine, which has no apt access)
set -euo pipefail

TORCH_VERSION="2.11.0"
MOSHI_VERSION="0.2.13"
MONOLOGUE_HOME="${MONOLOGUE_HOME:-$HOME/.cache/monologue}"
VENV="$MONOLOGUE_HOME/venv"

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
  libsentencepiece-dev sentencepiece
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev
  libcli11-dev nlohmann-json3-dev
  libcurl4-openssl-dev  # Hugging Face Hub downloads (core/hub)
  espeak-ng sox ffmpeg python3-venv
  nginx-light  # the service's scale-out test (grpc_pass in front of two replicas)
  libopus-dev libogg-dev  # streaming Ogg/Opus of the WebSocket endpoints (service/http/ogg_opus_stream)
  libboost-dev libmsgpack-cxx-dev  # serve --http: Boost.Beast HTTP/WebSocket, MessagePack (service/http)
)

log() { printf '[setup] %s\n' "$*" >&2; }

if [[ "${MONOLOGUE_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    log "Debian packages: all present"
  fi
fi

PY="${PYTHON:-python3}"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment in $VENV"
  mkdir -p "$MONOLOGUE_HOME"
  "$PY" -m venv "$VENV"
fi

have_version() { "$VENV/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('$1')!='$2')" 2>/dev/null; }

if ! have_version torch "$TORCH_VERSION"; then
  log "installing torch==$TORCH_VERSION (libtorch for the C++ build)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if ! have_version moshi "$MOSHI_VERSION" || ! "$VENV/bin/python" -c "import sphn" 2>/dev/null; then
  # The reference pins torch<2.10; it runs fine on 2.11, so install it without its pins and add what it imports.
  log "installing the reference moshi==$MOSHI_VERSION (fixture generation only)"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "moshi==$MOSHI_VERSION"
  "$VENV/bin/pip" install -q --disable-pip-version-check "numpy<2.3" "safetensors<0.8" "sentencepiece<0.3" \
    "einops<0.9" "huggingface-hub<1.0" tqdm "sphn>=0.2,<0.3"
fi
if ! "$VENV/bin/python" -c "import julius" 2>/dev/null; then
  # The DSM reference scripts resample their input with julius; make_asr_fixtures.py runs the DSM STT script's
  # loop and tests/reference/measure_resampler.py compares our resampler with julius's (pure Python, torch only).
  log "installing julius (the DSM reference scripts' resampler; fixture scripts only)"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "julius<0.3"
fi
if ! "$VENV/bin/python" -c "import huggingface_hub" 2>/dev/null; then
  log "installing huggingface-hub (the Hub cache interoperability tests, tests/hub)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "huggingface-hub<1.0"
fi
if ! "$VENV/bin/python" -c "import grpc, grpc_tools" 2>/dev/null; then
  log "installing grpcio + grpcio-tools (samples/python client)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "grpcio<1.70" "grpcio-tools<1.70"
fi
log "ready: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') in $VENV"
