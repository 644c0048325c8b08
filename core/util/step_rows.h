// Which batch slots one model step computes, so that a step's cost follows the active streams instead of the
// batch the state was made for.
//
// A state holds B slots. A step over the slots S (the active ones, |S| = n) computes a bucket of R rows,
// R = StepBucket(n, B) (the next power of two, capped at B): the n active slots plus R - n padding slots
// (slots that are not active; their rows are computed but nothing of them is stored). Buckets keep the set of
// shapes small (one per power of two), which is what per-shape caches and CUDA graphs need.
//
// Large per-slot state (KV caches) is not copied per step: modules read the rows of the step through `index`
// (a view when the rows are contiguous) and write only what the step adds, for the active rows only
// (ScatterActive / index_put on the new positions). Small per-slot state (offsets, conv tails) is gathered
// and scattered back whole.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue {

// The rows a step computes for `active` active slots of a batch of `batch` (1 <= active <= batch): the
// smallest power of two >= active, or `batch` when that is smaller.
int64_t StepBucket(int64_t active, int64_t batch);

struct StepRows {
  int64_t batch = 0;   // slots of the full state
  int64_t rows = 0;    // rows computed (the bucket)
  int64_t active = 0;  // real (active) slots among them
  int64_t start = -1;  // >= 0: the rows are the slots [start, start + rows), read as views
  std::vector<int64_t> slots;      // host: slot of each computed row, ascending
  std::vector<uint8_t> is_active;  // host: 1 for the rows of active slots, 0 for padding
  at::Tensor index;                // int64 [rows] on the device: `slots`
  at::Tensor active_local;         // int64 [active]: the computed rows that are active (ascending)
  at::Tensor active_slots;         // int64 [active]: their slots (ascending)
  at::Tensor active_mask;          // bool [rows]: `is_active`

  bool all_active() const { return active == rows; }
  // The step's rows of `full` ([batch, ...] along dim 0): a view when the rows are contiguous, else a copy.
  at::Tensor Gather(const at::Tensor& full) const;
  // Writes the active rows of `local` ([rows, ...], e.g. from Gather) into `full` in place; a no-op when
  // `local` is the view Gather returned (the caller then wrote through it).
  void ScatterActive(const at::Tensor& full, const at::Tensor& local) const;
  // [active, ...] rows in ascending slot order -> [rows, ...] with `fill` on padding rows.
  at::Tensor Expand(const at::Tensor& active_rows, double fill = 0) const;
  // The active rows of `local` ([rows, ...]) in ascending slot order ([active, ...]).
  at::Tensor SelectActive(const at::Tensor& local) const;
  // The same step over a state with two rows per slot (slot s at rows s and batch + s; e.g. CFG).
  StepRows Doubled() const;
};

// The rows of a step over `active_slots` (ascending, each in [0, batch)) on `device`. Padding
// slots are chosen so that the rows are contiguous when they can be (views instead of copies).
absl::StatusOr<StepRows> MakeStepRows(std::span<const int64_t> active_slots, int64_t batch,
                                      c10::Device device);

}  // namespace monologue
