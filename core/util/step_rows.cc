#include "core/util/step_rows.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace monologue {

int64_t StepBucket(int64_t active, int64_t batch) {
  int64_t bucket = 1;
  while (bucket < active) bucket *= 2;
  return std::min(bucket, batch);
}

namespace {
at::Tensor LongTensor(const std::vector<int64_t>& values, c10::Device device) {
  return at::tensor(values, at::kLong).to(device);
}
}  // namespace

absl::StatusOr<StepRows> MakeStepRows(std::span<const int64_t> active_slots, int64_t batch,
                                      c10::Device device) {
  const int64_t n = static_cast<int64_t>(active_slots.size());
  if (batch < 1 || n < 1 || n > batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("step rows: ", n, " active slots for a batch of ", batch, " (need 1 to the batch)"));
  }
  std::vector<uint8_t> taken(static_cast<size_t>(batch), 0);
  for (size_t i = 0; i < active_slots.size(); ++i) {
    const int64_t s = active_slots[i];
    if (s < 0 || s >= batch) {
      return absl::InvalidArgumentError(absl::StrCat("step rows: slot ", s, " out of [0, ", batch, ")"));
    }
    if (i > 0 && s <= active_slots[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("step rows: slots must be distinct and ascending (slot ", s, ")"));
    }
    taken[static_cast<size_t>(s)] = 1;
  }
  StepRows r;
  r.batch = batch;
  r.active = n;
  r.rows = StepBucket(n, batch);
  const auto [lo, hi] = std::minmax_element(active_slots.begin(), active_slots.end());
  if (*hi - *lo + 1 <= r.rows) {
    // A window of `rows` slots holds every active slot: contiguous rows, read as views.
    r.start = std::min(*lo, batch - r.rows);
    for (int64_t s = r.start; s < r.start + r.rows; ++s) r.slots.push_back(s);
  } else {
    std::vector<int64_t> slots(active_slots.begin(), active_slots.end());
    for (int64_t s = 0; s < batch && static_cast<int64_t>(slots.size()) < r.rows; ++s) {
      if (!taken[static_cast<size_t>(s)]) slots.push_back(s);
    }
    std::sort(slots.begin(), slots.end());
    r.slots = std::move(slots);
  }
  std::vector<int64_t> active_local, active_sorted;
  for (int64_t i = 0; i < r.rows; ++i) {
    const bool a = taken[static_cast<size_t>(r.slots[static_cast<size_t>(i)])] != 0;
    r.is_active.push_back(a ? 1 : 0);
    if (a) {
      active_local.push_back(i);
      active_sorted.push_back(r.slots[static_cast<size_t>(i)]);
    }
  }
  RETURN_IF_ERROR(GuardTorch("step rows", [&] {
    r.index = LongTensor(r.slots, device);
    r.active_local = LongTensor(active_local, device);
    r.active_slots = LongTensor(active_sorted, device);
    r.active_mask = at::tensor(std::vector<int64_t>(r.is_active.begin(), r.is_active.end()), at::kLong)
                        .to(device, at::kBool);
  }));
  return r;
}

at::Tensor StepRows::Gather(const at::Tensor& full) const {
  if (start >= 0) return full.narrow(0, start, rows);
  return full.index_select(0, index);
}

void StepRows::ScatterActive(const at::Tensor& full, const at::Tensor& local) const {
  if (start >= 0 && local.is_alias_of(full)) return;
  if (all_active()) {
    if (start >= 0) {
      full.narrow(0, start, rows).copy_(local);
    } else {
      full.index_copy_(0, index, local);
    }
    return;
  }
  full.index_copy_(0, active_slots, local.index_select(0, active_local));
}

at::Tensor StepRows::Expand(const at::Tensor& active_rows, double fill) const {
  if (all_active()) return active_rows;
  auto sizes = active_rows.sizes().vec();
  sizes[0] = rows;
  at::Tensor out = at::full(sizes, fill, active_rows.options());
  out.index_copy_(0, active_local, active_rows);
  return out;
}

at::Tensor StepRows::SelectActive(const at::Tensor& local) const {
  if (all_active()) return local;
  return local.index_select(0, active_local);
}

StepRows StepRows::Doubled() const {
  StepRows d;
  d.batch = 2 * batch;
  d.rows = 2 * rows;
  d.active = 2 * active;
  d.start = rows == batch ? 0 : -1;
  d.slots = slots;
  d.is_active = is_active;
  for (size_t i = 0; i < slots.size(); ++i) {
    d.slots.push_back(slots[i] + batch);
    d.is_active.push_back(is_active[i]);
  }
  d.index = at::cat({index, index + batch});
  d.active_local = at::cat({active_local, active_local + rows});
  d.active_slots = at::cat({active_slots, active_slots + batch});
  d.active_mask = at::cat({active_mask, active_mask});
  return d;
}

}  // namespace monologue
