#!/usr/bin/env bash
# Build the libtorch-only configuration of monologue on the GPU machine, run its tests, then a few CUDA
# benchmarks on random-weight models of the released sizes.
#
# That machine has no internet and no Abseil, nlohmann-json, CLI11 or GoogleTest: they come from ./.devdeps, a
# relocatable prefix (git-ignored, sent along with the checkout) holding those packages' headers, libraries and
# CMake config files. libtorch comes from the machine's Python venv.
#
# Here, once:                     bash scripts/make_devdeps.sh      (then name .devdeps in the device tool's carry)
# There, from the repository root: bash scripts/device_check.sh
# The CUDA tests (MimiCudaTest, LmCudaTest) run first and alone; the rest (the CPU tests, on that machine's CPU)
# then run with 2 threads each: 8 test processes with libtorch's default of one OpenMP thread per core would
# oversubscribe the 16 cores, and OpenMP's barriers then wait for descheduled threads (the lm tests took
# minutes that way on 2026-11-30).
# Everything is optional; defaults suit the GPU machine:
#   MONOLOGUE_PYTHON  python that holds torch           (default /opt/torch/.venv/bin/python3)
#   TORCH_PREFIX      torch's CMake prefix               (default: asked of MONOLOGUE_PYTHON)
#   DEVDEPS           the dependency prefix              (default $PWD/.devdeps/usr)
#   BUILD_DIR         build folder                       (default build-device)
#   OUT               logs and results                   (default /tmp/out)
#   JOBS              build jobs                         (default nproc)
#   BUILD_TARGETS     space-separated targets to build   (default: all)
#   CMAKE_EXTRA_ARGS  more configure arguments, space-separated
#   RUN_TESTS         1: run ctest                       (default 1)
#   CTEST_JOBS        parallel tests                     (default 8)
#   TEST_TIMEOUT      seconds for a test with no TIMEOUT property of its own (default 300)
#   CTEST_TIMEOUT     seconds for the whole ctest run    (default 300)
#   CTEST_EXCLUDE     regex of tests not run (default: the Hub download tests, which need libcurl, and the
#                     placeholders of test binaries BUILD_TARGETS left out; "" runs all)
#   TEST_THREADS      OpenMP threads per test process after the CUDA tests (default 2)
#   CTEST_ARGS        more ctest arguments, e.g. "-R Kernels"
#   RUN_BENCHES       1: run the benchmarks              (default 1)
#   BENCH_DEVICE      device the benchmarks run on       (default cuda)
#   BENCHES           which benchmarks, in order of priority (default "codec lm transcribe chat"; also
#                     "synthesize", which needs a sentencepiece tokenizer and so fails in a libtorch-only build)
#   BENCH_TIMEOUT     seconds for one benchmark run      (default 120)
#   BENCH_BUDGET      seconds for all benchmark runs; later ones are skipped once it is spent (default 240)
# A build failure does not stop the run: whatever did build is still tested and benchmarked, so that one
# broken target does not waste the lease.
# Exit status: non-zero when the configure or build fails or a test fails (benchmarks only report).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${MONOLOGUE_PYTHON:-/opt/torch/.venv/bin/python3}"
DEVDEPS="${DEVDEPS:-$PWD/.devdeps/usr}"
BUILD_DIR="${BUILD_DIR:-build-device}"
OUT="${OUT:-/tmp/out}"
JOBS="${JOBS:-$(nproc)}"
RUN_TESTS="${RUN_TESTS:-1}"
CTEST_JOBS="${CTEST_JOBS:-8}"
TEST_TIMEOUT="${TEST_TIMEOUT:-300}"
CTEST_TIMEOUT="${CTEST_TIMEOUT:-300}"
# The Hub tests download from a local fake server; built with MONOLOGUE_WITH_CURL=OFF the client is cache-only.
CTEST_EXCLUDE="${CTEST_EXCLUDE-NOT_BUILT|^Hub(Cli)?Test\.}"
RUN_BENCHES="${RUN_BENCHES:-1}"
BENCH_DEVICE="${BENCH_DEVICE:-cuda}"
BENCHES="${BENCHES:-codec lm transcribe chat}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-120}"
BENCH_BUDGET="${BENCH_BUDGET:-240}"
mkdir -p "$OUT"

log() { printf '[device_check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [[ ! -d "$DEVDEPS" ]]; then
  echo "missing $DEVDEPS (the Abseil/nlohmann-json/CLI11/GoogleTest prefix: run scripts/make_devdeps.sh on the" \
    "development machine and carry .devdeps)" >&2
  exit 1
fi
if [[ -z "${TORCH_PREFIX:-}" ]]; then
  TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
fi
# Abseil is linked as shared libraries; the executables' RPATH names their folder, but libraries they need
# only through other Abseil libraries are found through LD_LIBRARY_PATH. The build needs it too: it runs the
# test binaries to list their tests.
DEVDEPS_LIB="$DEVDEPS/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$DEVDEPS_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# torch's CMake config looks for the CUDA toolkit; help it when nvcc is installed but not on PATH.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

{
  log "host ${HOSTNAME:-?}, $(nproc) cores; $(${CXX:-c++} --version 2>/dev/null | head -1); $(cmake --version | head -1)"
  log "torch prefix $TORCH_PREFIX; deps $DEVDEPS"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  fi
  if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; fi
} 2>&1 | tee "$OUT/environment.log"

# --- configure -------------------------------------------------------------------------------------------
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
read -r -a EXTRA <<<"${CMAKE_EXTRA_ARGS:-}"
log "configure into $BUILD_DIR"
if ! cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$DEVDEPS;$TORCH_PREFIX" \
    -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DMONOLOGUE_WITH_FFMPEG=OFF -DMONOLOGUE_WITH_SENTENCEPIECE=OFF \
    -DMONOLOGUE_WITH_GRPC=OFF -DMONOLOGUE_WITH_CURL=OFF \
    -DMONOLOGUE_BUILD_TESTS=ON \
    "${EXTRA[@]}" >"$OUT/configure.log" 2>&1; then
  tail -n 60 "$OUT/configure.log"
  log "configure FAILED (full log: $OUT/configure.log)"
  exit 1
fi

# --- build -----------------------------------------------------------------------------------------------
read -r -a TARGETS <<<"${BUILD_TARGETS:-}"
log "build (-j $JOBS${TARGETS[*]:+, targets: ${TARGETS[*]}})"
build_start=$SECONDS
TARGET_ARGS=()
((${#TARGETS[@]})) && TARGET_ARGS=(--target "${TARGETS[@]}")
KEEP_GOING=(-k)  # build what can be built past a failure
[[ -f "$BUILD_DIR/build.ninja" ]] && KEEP_GOING=(-k 0)
build_rc=0
cmake --build "$BUILD_DIR" -j "$JOBS" "${TARGET_ARGS[@]}" -- "${KEEP_GOING[@]}" >"$OUT/build.log" 2>&1 || build_rc=$?
if ((build_rc != 0)); then
  # What failed and the compiler's and linker's messages (the full command lines stay in build.log).
  { grep -E '^FAILED:' "$OUT/build.log" || true
    grep -E -B 2 -A 6 'error:|undefined reference' "$OUT/build.log" | grep -v '^: && ' | head -n 150 || true
    tail -n 1 "$OUT/build.log"; } | tee "$OUT/build_tail.log"
  build_summary="FAILED (exit $build_rc) after $((SECONDS - build_start)) s; full log $OUT/build.log"
else
  tail -n 40 "$OUT/build.log" >"$OUT/build_tail.log"
  build_summary="ok in $((SECONDS - build_start)) s"
fi
log "build: $build_summary"

# --- tests -----------------------------------------------------------------------------------------------
test_rc=0
test_summary="tests not run"
if [[ "$RUN_TESTS" == 1 ]]; then
  read -r -a CTEST_EXTRA <<<"${CTEST_ARGS:-}"
  log "ctest -j $CTEST_JOBS (default per-test timeout $TEST_TIMEOUT s, whole run $CTEST_TIMEOUT s)"
  test_start=$SECONDS
  timeout --kill-after=15 "$CTEST_TIMEOUT" \
    ctest --test-dir "$BUILD_DIR" -R Cuda --output-on-failure --timeout "$TEST_TIMEOUT" \
    >"$OUT/ctest_cuda.log" 2>&1 || test_rc=$?
  cuda_summary="$(grep -E 'tests passed' "$OUT/ctest_cuda.log" | tail -1 || true)"
  if [[ -z "$cuda_summary" ]] && grep -q 'No tests were found' "$OUT/ctest_cuda.log"; then
    cuda_summary="none built"
  fi
  log "CUDA tests: ${cuda_summary:-did not finish (exit $test_rc)}"
  # With BUILD_TARGETS, test binaries outside it were not built: gtest suites leave *_NOT_BUILT placeholders
  # (excluded by default), the fuzz smoke tests plain commands.
  skip="Cuda${CTEST_EXCLUDE:+|$CTEST_EXCLUDE}"
  [[ -n "${BUILD_TARGETS:-}" ]] && skip="$skip|^Fuzz\."
  left=$((CTEST_TIMEOUT - (SECONDS - test_start)))
  ((left < 30)) && left=30
  OMP_NUM_THREADS="${TEST_THREADS:-2}" timeout --kill-after=15 "$left" \
    ctest --test-dir "$BUILD_DIR" -j "$CTEST_JOBS" -E "$skip" --output-on-failure \
    --timeout "$TEST_TIMEOUT" "${CTEST_EXTRA[@]}" >"$OUT/ctest.log" 2>&1 || test_rc=$?
  test_summary="$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$OUT/ctest.log" | tail -1 || true)"
  if [[ -z "$test_summary" ]]; then
    test_summary="ctest did not finish (exit $test_rc; 124: it ran past $CTEST_TIMEOUT s)"
  fi
  test_summary="CUDA: ${cuda_summary:-not finished}; others: $test_summary"
  log "tests: $test_summary ($((SECONDS - test_start)) s)"
  # ctest lists the failures at the end of its log.
  sed -n '/The following tests FAILED/,$p' "$OUT/ctest.log" | tee "$OUT/ctest_failed.log"
fi

# --- benchmarks ------------------------------------------------------------------------------------------
# Random weights of the released architectures (bench's default when no --model is given), at batch 1 and 8,
# bf16 and f32 for the LM; few steps. Each run is bounded so that a hang cannot eat the GPU lease.
bench_lines=()
BIN="$BUILD_DIR/monologue"
run_bench() {  # run_bench NAME ARGS...: one `monologue bench` run, its output in $OUT/bench_NAME.log
  local name="$1"
  shift
  local left=$((BENCH_BUDGET - (SECONDS - bench_start)))
  if ((left < 20)); then
    bench_lines+=("$name: skipped (bench budget of $BENCH_BUDGET s spent)")
    return 0
  fi
  local limit=$((left < BENCH_TIMEOUT ? left : BENCH_TIMEOUT))
  local rc=0 t0=$SECONDS
  log "bench $name: monologue bench $* (limit $limit s)"
  timeout --kill-after=10 "$limit" "$BIN" bench "$@" >"$OUT/bench_$name.log" 2>&1 || rc=$?
  cat "$OUT/bench_$name.log"
  if ((rc == 0)); then
    bench_lines+=("$name: ok in $((SECONDS - t0)) s")
  elif ((rc == 124 || rc == 137)); then
    bench_lines+=("$name: TIMED OUT after $limit s")
  else
    bench_lines+=("$name: FAILED (exit $rc; last line: $(tail -n 1 "$OUT/bench_$name.log"))")
  fi
}
if [[ "$RUN_BENCHES" == 1 && -x "$BIN" ]]; then
  bench_start=$SECONDS
  dev=(--device "$BENCH_DEVICE")
  for b in $BENCHES; do
    case "$b" in
      codec)  # Mimi has no dtype flag (f32)
        run_bench codec codec "${dev[@]}" --batch 1,8 --frames 30 --warmup 5 ;;
      lm)
        run_bench lm lm --preset stt-1b-en_fr "${dev[@]}" --dtype bf16,f32 --batch 1,8 --steps 20 --warmup 5 ;;
      transcribe)
        run_bench transcribe transcribe --preset stt-1b-en_fr "${dev[@]}" --dtype bf16,f32 --batch 1,8 \
          --steps 20 --warmup 3 ;;
      chat)  # one dtype per run; the 7B model's random weights take a while to draw
        run_bench chat_bf16 chat --preset moshi-7b "${dev[@]}" --dtype bf16 --batch 1,8 --steps 10 --warmup 5
        run_bench chat_f32 chat --preset moshi-7b "${dev[@]}" --dtype f32 --batch 1,8 --steps 10 --warmup 5 ;;
      synthesize)  # needs a sentencepiece tokenizer: a libtorch-only build says so and stops
        run_bench synthesize synthesize --preset tts-1.6b-en_fr "${dev[@]}" --dtype bf16,f32 --batch 1,8 \
          --steps 10 --warmup 3 --ttfa-runs 1 ;;
      *) bench_lines+=("$b: unknown benchmark") ;;
    esac
  done
elif [[ "$RUN_BENCHES" == 1 ]]; then
  bench_lines+=("no $BIN: benchmarks not run")
fi

# --- summary ---------------------------------------------------------------------------------------------
{
  echo "=== device_check summary"
  echo "build: $build_summary"
  echo "tests: $test_summary"
  for line in "${bench_lines[@]}"; do echo "bench $line"; done
  echo "logs: $OUT"
} | tee "$OUT/summary.txt"
if ((build_rc != 0)); then exit 1; fi
exit "$test_rc"
