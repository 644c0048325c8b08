// Same-process A/B of two builds of the int8 GEMV kernel (core/lm/int8_gemm.cc) on the products of one
// tts-1.6b-en_fr frame at batch 1: 16 temporal layers (self-attention, cross-attention query and output,
// gated feed-forward) and 32 depformer steps over the released weight-set schedule. Frames alternate between
// the two kernels, so both see the same minute of this VM's memory speed, which moves 30-60 GB/s from one
// minute to the next (docs/benchmarks.md). Built and run by int8_gemv_ab.sh; the two kernels are the same
// source file at two revisions, their GemmRows renamed to KernelAGemmRows and KernelBGemmRows.
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "core/lm/int8_gemm.h"

using monologue::lm::int8::KernelPath;
using GemmRowsFn = void(KernelPath, const float*, int64_t, int64_t, int64_t, const int8_t*, const float*,
                        const int32_t*, const float*, float*, int64_t, int64_t, int64_t);
extern "C" GemmRowsFn KernelAGemmRows, KernelBGemmRows;

namespace {

constexpr int64_t kRowGroup = monologue::lm::int8::kRowGroup;
constexpr int64_t kChunk = monologue::lm::int8::kChunk;

struct Matrix {
  int64_t n = 0, k = 0;
  int8_t* w = nullptr;
  float* scale = nullptr;
  int32_t* row_sum = nullptr;
};

// One 2 MB-page arena for everything, as the runtime places its weights (core/util/huge_pages.h).
class Arena {
 public:
  explicit Arena(size_t bytes) : bytes_(bytes) {
    base_ =
        static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) {
      std::perror("mmap");
      std::exit(1);
    }
    madvise(base_, bytes, MADV_HUGEPAGE);
  }
  void* Take(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (used_ + bytes > bytes_) {
      std::fprintf(stderr, "arena too small\n");
      std::exit(1);
    }
    void* p = base_ + used_;
    used_ += bytes;
    return p;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t bytes_, used_ = 0;
};

Matrix Make(Arena& arena, int64_t n, int64_t k, uint32_t seed) {
  Matrix m{n, k};
  const int64_t kpad = (k + kChunk - 1) / kChunk * kChunk;
  const int64_t rows = (n + kRowGroup - 1) / kRowGroup * kRowGroup;
  m.w = static_cast<int8_t*>(arena.Take(rows * kpad));
  m.scale = static_cast<float*>(arena.Take(n * sizeof(float)));
  m.row_sum = static_cast<int32_t*>(arena.Take(n * sizeof(int32_t)));
  uint32_t s = seed;
  for (int64_t r = 0; r < rows; ++r) {
    int32_t sum = 0;
    for (int64_t i = 0; i < kpad; ++i) {
      s = s * 1664525u + 1013904223u;
      const int8_t v = i < k && r < n ? static_cast<int8_t>(static_cast<int>(s >> 24) % 255 - 127) : 0;
      m.w[monologue::lm::int8::PackedOffset(r, i, kpad)] = v;
      sum += v;
    }
    if (r < n) {
      m.row_sum[r] = sum;  // the kernel's zero-point correction needs each row's sum of weights
      m.scale[r] = 0.001f * static_cast<float>(1 + r % 7);
    }
  }
  return m;
}

// Rows split in two halves by row group, one per thread, as Int8Rows splits them.
void Run(GemmRowsFn* fn, const Matrix& m, const float* x, float* y) {
  const int64_t groups = (m.n + kRowGroup - 1) / kRowGroup, half = (groups + 1) / 2;
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    const int64_t g0 = t == 0 ? 0 : half, g1 = t == 0 ? half : groups;
    fn(KernelPath::kVnni, x, m.k, 1, m.k, m.w, m.scale, m.row_sum, nullptr, y, m.n, g0 * kRowGroup,
       std::min(m.n, g1 * kRowGroup));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int frames = argc > 1 ? std::atoi(argv[1]) : 20;
  Arena arena(size_t{1600} << 20);
  std::vector<Matrix> temporal, sets, depformer_in, depformer_out;
  const std::vector<std::pair<int, int>> layer = {{6144, 2048}, {2048, 2048},  {2048, 2048},
                                                  {2048, 2048}, {11264, 2048}, {2048, 5632}};
  const std::vector<std::pair<int, int>> dep_layer = {{3072, 1024}, {1024, 1024}, {4096, 1024}, {1024, 2048}};
  uint32_t seed = 1;
  for (int l = 0; l < 16; ++l)
    for (auto [n, k] : layer) temporal.push_back(Make(arena, n, k, seed++));
  for (int s = 0; s < 11; ++s)
    for (int l = 0; l < 4; ++l)
      for (auto [n, k] : dep_layer) sets.push_back(Make(arena, n, k, seed++));
  for (int c = 0; c < 32; ++c) {
    depformer_in.push_back(Make(arena, 1024, 2048, seed++));
    depformer_out.push_back(Make(arena, 2048, 1024, seed++));
  }
  const int schedule[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8,  8,  8,  8,  8,  8,  8,  8,
                            9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10};
  std::vector<float> x(8192), ya(16384), yb(16384);
  uint32_t s = 7;
  for (float& v : x) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int>(s >> 9) - (1 << 22)) / static_cast<float>(1 << 22);
  }

  // Same outputs? (An exact kernel change must give the same bits.)
  bool same = true;
  for (const Matrix* m : {&temporal[0], &temporal[5], &sets[2], &depformer_out[0]}) {
    Run(KernelAGemmRows, *m, x.data(), ya.data());
    Run(KernelBGemmRows, *m, x.data(), yb.data());
    same = same && std::memcmp(ya.data(), yb.data(), m->n * sizeof(float)) == 0;
  }

  double ms[2][2] = {{0, 0}, {0, 0}};
  for (int f = 0; f < 2 * (frames + 2); ++f) {
    GemmRowsFn* fn = f % 2 == 0 ? KernelAGemmRows : KernelBGemmRows;
    const auto t0 = std::chrono::steady_clock::now();
    for (const Matrix& m : temporal) Run(fn, m, x.data(), ya.data());
    const auto t1 = std::chrono::steady_clock::now();
    for (int c = 0; c < 32; ++c) {
      Run(fn, depformer_in[c], x.data(), ya.data());
      for (int l = 0; l < 4; ++l)
        for (int j = 0; j < 4; ++j) Run(fn, sets[(schedule[c] * 4 + l) * 4 + j], x.data(), ya.data());
      Run(fn, depformer_out[c], x.data(), ya.data());
    }
    const auto t2 = std::chrono::steady_clock::now();
    if (f < 4) continue;  // warm-up: two frames each
    ms[f % 2][0] += std::chrono::duration<double, std::milli>(t1 - t0).count() / frames;
    ms[f % 2][1] += std::chrono::duration<double, std::milli>(t2 - t1).count() / frames;
  }
  std::printf(
      "tts-1.6b-en_fr int8 products of one frame, batch 1, 2 threads, %d alternating frames each, %.0f MB "
      "of packed weights\n",
      frames, arena.used() / 1048576.0);
  std::printf("outputs of A and B: %s\n", same ? "bitwise equal" : "DIFFERENT");
  std::printf("%-3s %12s %14s %10s\n", "", "temporal ms", "depformer ms", "total ms");
  for (int i = 0; i < 2; ++i) {
    std::printf("%-3s %12.2f %14.2f %10.2f\n", i == 0 ? "A" : "B", ms[i][0], ms[i][1], ms[i][0] + ms[i][1]);
  }
  return 0;
}
