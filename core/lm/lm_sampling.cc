#include "core/lm/lm_sampling.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace monologue::lm {

namespace {
// Reference `multinomial(probs, 1)` without replacement: argmax(p / Exp(1)).
at::Tensor ExponentialRace(const at::Tensor& probs, const c10::optional<at::Generator>& generator) {
  const int64_t v = probs.size(-1);
  at::Tensor flat = probs.reshape({-1, v});
  at::Tensor q = at::empty_like(flat).exponential_(1, generator);
  at::Tensor out = (flat / q).argmax(-1, /*keepdim=*/true);
  auto sizes = probs.sizes().vec();
  sizes.back() = 1;
  return out.reshape(sizes);
}
}  // namespace

at::Tensor SampleToken(const at::Tensor& logits, const SamplingParams& params,
                       const c10::optional<at::Generator>& generator) {
  at::Tensor next;
  if (params.use_sampling && params.temperature > 0.0) {
    at::Tensor probs = at::softmax(logits / params.temperature, -1);
    if (params.top_k > 0) {
      const int64_t k = std::min<int64_t>(params.top_k, probs.size(-1));
      auto [values, indices] = at::topk(probs, k, -1);
      next = indices.gather(-1, ExponentialRace(values, generator));
    } else {
      next = ExponentialRace(probs, generator);
    }
  } else {
    next = logits.argmax(-1, /*keepdim=*/true);
  }
  return next.select(-1, 0);
}

}  // namespace monologue::lm
