// Cooperative cancellation of a long kernel (e.g. Ctrl-C in Python), with no Python in it.
//
// A binding hands its kernel a Cancel built on a hook, bool hook(void* ctx), that says whether to
// stop (pyrnn's: on the main thread, take the GIL and run Python's signal handlers; see
// bind_cancel.h). Only the calling thread, the team's tid 0, polls, between steps or chunks of
// work, and it asks the hook at most once per kPollInterval of wall time (reading a steady clock
// costs ~20 ns, a step far more), or at every poll when built so (the bindings' test countdown).
//
// A team stops together (no member may be left waiting at a barrier): the leader records the
// step at which the work stops before the barrier that ends that step, and every member asks
// stops_at(step) after that barrier. All get the same answer: the stop step is set once, before
// the barrier of that step, so a member that reads it late (after the leader's next poll) still
// compares it with its own step index. A stopped kernel returns early, leaves the outputs
// it did not finish unspecified and writes nothing that accumulates (weight gradients); its
// RAII guards (thread team, FTZ/DAZ, BLAS thread count) unwind as on the normal path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace pyrnn {

class Cancel {
 public:
  using Hook = bool (*)(void* ctx);
  static constexpr std::chrono::milliseconds kPollInterval{50};

  Cancel() = default;  // never stops
  // asks hook(ctx) at most once per `interval` (0: at every poll; tests)
  Cancel(Hook hook, void* ctx, std::chrono::nanoseconds interval = kPollInterval)
      : hook_(hook), ctx_(ctx), interval_(interval), next_(Clock::now() + interval) {}
  Cancel(const Cancel&) = delete;
  Cancel& operator=(const Cancel&) = delete;

  // The leader (tid 0) only, once per step, before the barrier that ends step `step` (steps
  // numbered upwards from 0): asks the hook whether to stop, if kPollInterval has passed.
  void poll(int64_t step) {
    if (hook_ == nullptr || cancelled()) return;
    if (Clock::now() < next_) return;
    if (hook_(ctx_)) stop_.store(step, std::memory_order_release);
    next_ = Clock::now() + interval_;
  }

  // Every member, after the barrier that ends step `step`: whether the work stops here.
  bool stops_at(int64_t step) const { return stop_.load(std::memory_order_acquire) <= step; }

  // Whether the work was stopped (where no team has to agree, and after the team's region).
  bool cancelled() const { return stop_.load(std::memory_order_acquire) != kNever; }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  Hook hook_ = nullptr;
  void* ctx_ = nullptr;
  std::chrono::nanoseconds interval_{kPollInterval};
  Clock::time_point next_{};  // the leader's next poll of the hook
  std::atomic<int64_t> stop_{kNever};
};

}  // namespace pyrnn
