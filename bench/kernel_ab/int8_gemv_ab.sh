#!/usr/bin/env bash
# Same-process A/B of the int8 GEMV kernel at two revisions on one tts-1.6b frame's products (batch 1, 2
# threads, the VNNI path). Usage: bench/kernel_ab/int8_gemv_ab.sh REV_A [REV_B] [FRAMES]
#   REV_A, REV_B: git revisions of core/lm/int8_gemm.{h,cc}; REV_B "worktree" (the default) is the working
#   tree. Both must share the packed layout (int8_gemm.h); the driver is compiled against REV_B's header.
# Needs g++ with OpenMP and objcopy; no libtorch. Prints mean ms per frame for A and B, and whether the two
# kernels give bitwise equal outputs.
set -euo pipefail
root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
rev_a="${1:?usage: int8_gemv_ab.sh REV_A [REV_B|worktree] [FRAMES]}"
rev_b="${2:-worktree}"
frames="${3:-20}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
flags=(-O3 -DNDEBUG -std=c++20)  # CMake's Release flags; the kernels pick their ISA with target attributes

take() {  # take REV NAME: that revision's kernel, compiled, its GemmRows renamed NAMEGemmRows, the rest local
  local rev="$1" name="$2" dir="$work/$2"
  mkdir -p "$dir/core/lm" "$dir/core/kernels"
  # Since e912e75 the kernel takes its CPU detection from core/kernels/cpu_isa (one detection for every kernel).
  for f in lm/int8_gemm.h lm/int8_gemm.cc kernels/cpu_isa.h kernels/cpu_isa.cc; do
    if [[ "$rev" == worktree ]]; then
      [[ -e "$root/core/$f" ]] && cp "$root/core/$f" "$dir/core/$f"
    else
      git -C "$root" show "$rev:core/$f" > "$dir/core/$f" 2>/dev/null || rm -f "$dir/core/$f"
    fi
  done
  local objs=("$dir/kernel.o")
  g++ "${flags[@]}" -I"$dir" -c "$dir/core/lm/int8_gemm.cc" -o "$dir/kernel.o"
  if [[ -e "$dir/core/kernels/cpu_isa.cc" ]]; then
    g++ "${flags[@]}" -I"$dir" -c "$dir/core/kernels/cpu_isa.cc" -o "$dir/cpu_isa.o"
    objs+=("$dir/cpu_isa.o")
  fi
  ld -r "${objs[@]}" -o "$dir/combined.o"
  local sym
  sym="$(nm "$dir/combined.o" | awk '$2 == "T" && $3 ~ /int88GemmRows/ {print $3}')"
  # Everything but the renamed entry point is made local, so the two revisions' helpers do not collide.
  objcopy --redefine-sym "$sym=${name}GemmRows" -w --localize-symbol='_ZN9monologue*' \
    "$dir/combined.o" "$work/$name.o"
}
take "$rev_a" KernelA
take "$rev_b" KernelB
g++ "${flags[@]}" -fopenmp -I"$work/KernelB" -c "$root/bench/kernel_ab/int8_gemv_ab.cc" -o "$work/driver.o"
g++ -fopenmp "$work/driver.o" "$work/KernelA.o" "$work/KernelB.o" -o "$work/int8_gemv_ab"
echo "A = $rev_a, B = $rev_b"
"$work/int8_gemv_ab" "$frames"
