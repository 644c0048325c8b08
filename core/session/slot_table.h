// The batch-slot bookkeeping every mode's engine shares (speech recognition, synthesis, dialogue): B slots,
// each holding one live session's state and its queue of decided events; a generation per slot so that a
// session that left or reset cannot touch what follows it; the "work pending" signal that wakes a scheduler
// (a push, a close, a reset, a new session); the "events ready" signal that wakes a session's reader; and the
// step counters. A mode's slot type derives from SlotBase<Event> and adds its own state; its engine adds only
// the per-frame step and what its events mean.
//
// Locking: one mutex guards every slot and the counters. An engine's model step runs outside it: the engine
// collects a step's inputs and marks its slots in_step under the lock, runs the model, then takes the lock
// again to hand out outputs (skipping slots whose generation changed meanwhile).
// Torch-free.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace monologue {

template <typename Event>
struct SlotBase {
  bool in_use = false;
  uint64_t generation = 0;    // bumped whenever a session leaves or restarts the slot
  bool needs_reset = false;   // the model's streaming state of this row is reset before its next step
  bool in_step = false;       // a frame of it is in the model now: it cannot end before that frame's output
  bool closed = false;        // no more input
  bool ended = false;         // the end event is queued
  std::vector<Event> events;  // decided, not yet taken by the session
};

// Which slot a session holds, and as of which generation.
struct SlotTicket {
  int index = -1;
  uint64_t generation = 0;
};

template <typename Slot>
class SlotTable {
 public:
  using Event = typename decltype(Slot::events)::value_type;

  // `noun` names the slots in errors ("transcription" -> "all 8 transcription slots are in use").
  SlotTable(int batch, std::string noun) : slots_(static_cast<size_t>(batch)), noun_(std::move(noun)) {}

  int batch() const { return static_cast<int>(slots_.size()); }
  std::mutex& mu() const { return mu_; }
  // The slot itself: callers hold mu().
  Slot& at(int index) { return slots_[static_cast<size_t>(index)]; }
  const Slot& at(int index) const { return slots_[static_cast<size_t>(index)]; }

  // ---- Under mu() ----
  void NotifyWorkLocked() {
    work_pending_ = true;
    work_cv_.notify_all();
  }
  void NotifyEvents() { events_cv_.notify_all(); }
  // Clears the work-pending flag at the start of a step (new work after this sets it again).
  void ClearWorkLocked() { work_pending_ = false; }
  void RecordStepLocked(double seconds) {
    ++steps_run_;
    step_seconds_ += seconds;
  }

  // ---- Taking the lock themselves ----
  // The first free slot, started with `start(slot)` (after the common fields are reset) under the lock;
  // RESOURCE_EXHAUSTED when every slot is taken.
  template <typename Start>
  absl::StatusOr<SlotTicket> Acquire(Start&& start) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int b = 0; b < batch(); ++b) {
      Slot& s = at(b);
      if (s.in_use) continue;
      s.in_use = true;
      s.generation++;
      RestartLocked(s);
      start(s);
      NotifyWorkLocked();
      return SlotTicket{b, s.generation};
    }
    return absl::ResourceExhaustedError(absl::StrCat("all ", batch(), " ", noun_, " slots are in use"));
  }

  // The session holding `ticket` left: the slot is free; `release(slot)` drops the mode's buffers. Nothing
  // happens when the slot has moved on (a stale ticket).
  template <typename Drop>
  void Release(const SlotTicket& ticket, Drop&& release) {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& s = at(ticket.index);
    if (s.generation != ticket.generation) return;
    s.in_use = false;
    s.generation++;
    s.events.clear();
    s.events.shrink_to_fit();
    release(s);
  }

  // The session restarts its stream on the same slot (pending input and events dropped); returns the new
  // ticket.
  template <typename Start>
  SlotTicket Restart(const SlotTicket& ticket, Start&& start) {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& s = at(ticket.index);
    s.generation++;
    RestartLocked(s);
    start(s);
    NotifyWorkLocked();
    return SlotTicket{ticket.index, s.generation};
  }

  // `f(slot)` under the lock (a session's accessors and mutators).
  template <typename F>
  decltype(auto) With(int index, F&& f) {
    std::lock_guard<std::mutex> lock(mu_);
    return f(at(index));
  }
  template <typename F>
  decltype(auto) With(int index, F&& f) const {
    std::lock_guard<std::mutex> lock(mu_);
    return f(at(index));
  }

  // Events decided since the last call.
  std::vector<Event> TakeEvents(int index) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Event> out;
    out.swap(at(index).events);
    return out;
  }
  // The same, waiting up to `timeout` for at least one.
  std::vector<Event> WaitEvents(int index, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    Slot& s = at(index);
    events_cv_.wait_for(lock, timeout, [&] { return !s.events.empty(); });
    std::vector<Event> out;
    out.swap(s.events);
    return out;
  }

  // A model step failed: the slots that were in it (`was_in_step(index)`, still at `generation[index]`) stay
  // where they were (their frames are lost); `end(slot)` lets each one end rather than hang, and their readers
  // are woken. `generation` holds each slot's generation as the step collected it.
  template <typename InStep, typename End>
  void AbandonStep(const std::vector<uint64_t>& generation, InStep&& was_in_step, End&& end) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int b = 0; b < batch(); ++b) {
      Slot& s = at(b);
      if (was_in_step(b) && s.in_use && s.generation == generation[static_cast<size_t>(b)]) {
        s.in_step = false;
        end(s);
      }
    }
    NotifyEvents();
  }

  // Raises the work-pending signal as a push does, for a scheduler's own reasons to run a step (a reader
  // drained its queue, a stream's write finished, a stop). Pending work is a flag, not an edge: a signal
  // raised after a step's ClearWorkLocked makes the next WaitForWork return at once, so none is lost.
  void NotifyWork() {
    std::lock_guard<std::mutex> lock(mu_);
    NotifyWorkLocked();
  }
  // Waits up to `timeout` for new work; true when there is some (the scheduler of a CLI or a server).
  bool WaitForWork(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return work_cv_.wait_for(lock, timeout, [&] { return work_pending_; });
  }

  int free_slots() const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const Slot& s : slots_) n += s.in_use ? 0 : 1;
    return n;
  }
  int64_t steps_run() const {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_run_;
  }
  double step_seconds() const {
    std::lock_guard<std::mutex> lock(mu_);
    return step_seconds_;
  }

 private:
  static void RestartLocked(Slot& s) {
    s.needs_reset = true;
    s.in_step = false;
    s.closed = false;
    s.ended = false;
    s.events.clear();
  }

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable events_cv_;
  bool work_pending_ = false;
  std::vector<Slot> slots_;
  std::string noun_;
  int64_t steps_run_ = 0;
  double step_seconds_ = 0;
};

}  // namespace monologue
