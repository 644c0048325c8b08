// Token sampling of the reference `sample_token` (moshi-reference.md §3.8): greedy argmax when sampling is
// off or the temperature is 0; otherwise softmax(logits / temp), optional top-k, and one draw by the
// exponential race argmax(p / E), E ~ Exp(1) (no multinomial, no host synchronisation). With the same
// generator type and seed as a reference run (CPU: torch.manual_seed), draws are identical.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace monologue::lm {

struct SamplingParams {
  bool use_sampling = true;
  double temperature = 0.8;
  int64_t top_k = 250;  // <= 0: no top-k
};

// logits [..., V] (float32) -> int64 [...].
at::Tensor SampleToken(const at::Tensor& logits, const SamplingParams& params,
                       const c10::optional<at::Generator>& generator);

}  // namespace monologue::lm
