// The kernels' own team of threads, and the barrier their time loops meet at once per step.
//
// A recurrent time loop splits the hidden units of every step over the team (each thread
// owns all G gates of its units, so its pointwise step needs only its own GEMM columns)
// and meets at one barrier per step. The team is persistent: workers spin briefly after a
// region, then sleep, so they never compete with the BLAS pool outside a region. One region
// runs at a time; a second caller (another Python thread) runs its region on one thread
// rather than wait. After fork() the child starts a fresh team.
//
// A busy machine: a member that the OS deschedules stalls every meeting of its region (and a
// WorkQueue region's caller waits for the unit such a member holds). So a region gets no more
// members than there are cores left by the other runnable threads of the machine (free_threads(),
// from /proc/loadavg's running count less this process's own, sampled at most every 10 ms), and every wait (barrier,
// idle worker, the caller's final wait) spins a bounded time, none at all while the machine is oversubscribed, then
// sleeps (a futex on Linux) instead of spinning or yielding in a loop.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace pyrnn {

// Thrown out of SpinBarrier::wait in the other members when one member of a region has thrown:
// the region unwinds everywhere instead of waiting for a member that will never arrive.
struct RegionAborted {};

class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait();   // returns once all n threads of the region have called it (n = 1: at once)
  void abort();  // a member failed: every wait, now and later, throws RegionAborted

 private:
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<unsigned> generation_{0};  // a futex word (Linux): sleepers wait on it
  std::atomic<int> sleepers_{0};
  std::atomic<bool> aborted_{false};
  int n_;
};

// Threads a region may use now: max_threads(), less the threads of other processes that the machine was
// running at the last sample (/proc/loadavg's runnable count less this process's runnable threads, from
// /proc/self/task: its own spinning pools, PyTorch's or OpenBLAS', are no other program's load; read at
// most every 10 ms; the smaller count of the last two samples, so a passing process does not shrink the
// team), at least 1. Elsewhere than Linux, or when this process may run on
// fewer CPUs than the machine has (the count is the machine's, not its cores'): max_threads().
int free_threads();
bool oversubscribed();  // free_threads() < max_threads(): waits sleep at once instead of spinning
// Private (tests): pretend `n` other threads run (n >= 0), or read /proc/loadavg again (n < 0).
void set_others_running(int n);
int others_running();  // the last sample used (tests, benchmarks)

// One iteration of a spin-wait: the CPU's pause hint (x86), else a yield.
void pause_briefly();

int max_threads();            // the cap (default: the CPUs this process may run on)
void set_max_threads(int n);  // n >= 1

// Work between two meetings of the team below which a kernel runs on one thread: a recurrent
// time step's GEMM (one barrier per step), or a whole convolution. Default 2^20 flops, about
// 10 us of one core, where a barrier (~1 us, more on a busy machine) stops paying; tests set 0
// so that the team's code runs on small shapes too.
void set_parallel_min_flops(long long flops);

// PAUSE spins (each ~25 ns on AMD Zen 4) a waiting thread (a barrier, an idle worker, the caller's final wait)
// spends before it sleeps; none while the machine is oversubscribed (the spinning thread would take the
// core from the one it waits for). A sleeping worker costs the next region a wake-up, and in a virtual
// machine an idle vCPU's is tens of microseconds (the host must run it again): a step's regions are
// often that far apart (a layer's Python between two kernels), so the default spins ~0.5 ms.
constexpr int kDefaultSpins = 20000;
void set_spin_budget(int spins);  // private (tests, tuning); spins < 0: the default
int spin_budget_setting();
long long parallel_min_flops();

// A streaming kernel (pooling, upsampling, batch norm: a few operations per element it reads or
// writes, bound by memory) counts this many flops per element: about the time of that many flops
// of a GEMM on one core (~0.3 ns against ~100 GFLOP/s).
constexpr long long kStreamFlopsPerElement = 32;

// Hands the units 0 .. count-1 of a region's work to its members, each once, in increasing order: a
// member that is slow (descheduled on a busy machine) takes fewer, the others more.
class WorkQueue {
 public:
  explicit WorkQueue(int64_t count) : count_(count) {}
  bool take(int64_t& unit) {  // the next unit, false when none is left
    unit = next_.fetch_add(1, std::memory_order_relaxed);
    return unit < count_;
  }

 private:
  alignas(64) std::atomic<int64_t> next_{0};
  int64_t count_;
};

// A reduction's work as `count()` slots, contiguous ranges of [0, units): slot s sums into partial result s, the
// partials folded in slot order after the region (fold_members, add_member_parts), so the result does not depend on
// which member ran which slot. Members take slots from a queue, two per member: one that runs late holds back at most
// half its share (a fixed share per member made the region wait for all of it). One thread: one slot.
class Slots {
 public:
  Slots(int64_t units, int want)
      : units_(units),
        count_(want <= 1 ? 1 : static_cast<int>(std::clamp<int64_t>(units, 1, 2 * int64_t{want}))),
        queue_(count_) {}
  int count() const { return count_; }
  int64_t largest() const { return (units_ + count_ - 1) / count_; }  // units of the largest slot
  bool take(int64_t& s, int64_t& u0, int64_t& u1) {  // the next slot and its units [u0, u1); false when none is left
    if (!queue_.take(s)) return false;
    u0 = units_ * s / count_, u1 = units_ * (s + 1) / count_;
    return true;
  }

 private:
  int64_t units_;
  int count_;
  WorkQueue queue_;
};

// The team for a kernel of `flops` split into `units` independent pieces: 1 thread below
// 4 x parallel_min_flops() (a region, its wake-up and its meetings, must pay for themselves, as for
// a convolution) or with fewer than 2 units, else min(units, max_threads()).
int team_for(long long flops, long long units);

using RegionFn = void (*)(void* ctx, int tid, int n, SpinBarrier& barrier);

// Run fn(ctx, tid, n, barrier) for tid = 0 .. n-1, the caller as tid 0; returns the n used,
// which is at most `want` (1 when the team is busy or want <= 1) and at most free_threads(). If a member throws (say
// std::bad_alloc for its scratch), the barrier is aborted so the others unwind too, the caller
// waits until every member has left fn, and the first exception is rethrown on the caller.
// With optional_members, a member other than the caller that has not started by the time the
// caller's fn returns skips the region (the caller does not wait for it): for regions whose
// members take their work from a WorkQueue (those that come do it all) and never meet at the
// barrier (n counts members that may never come). A worker descheduled on a busy machine then
// costs nothing, where a region with a fixed share per member waits for it.
int parallel_run(int want, RegionFn fn, void* ctx, bool optional_members = false);

template <typename Fn>  // fn(tid, n, barrier)
int parallel(int want, Fn& fn) {
  return parallel_run(want, [](void* c, int tid, int n, SpinBarrier& b) { (*static_cast<Fn*>(c))(tid, n, b); }, &fn);
}

template <typename Fn>  // fn(tid): its work from a WorkQueue, no barrier (see parallel_run)
void parallel_optional(int want, Fn& fn) {
  parallel_run(want, [](void* c, int tid, int, SpinBarrier&) { (*static_cast<Fn*>(c))(tid); }, &fn, true);
}

// A region's partial results, `size` values per member one after another (members [0, used)):
// fold_members adds members 1.. into member 0's; add_member_parts adds each member's into out, member by member.
// Either way the order of the sums is fixed by the member numbers, not by who finished first.
template <typename F>
void fold_members(F* parts, int64_t size, int used) {
  for (int t = 1; t < used; ++t)
    for (int64_t i = 0; i < size; ++i) parts[i] += parts[size * t + i];
}
template <typename F>
void add_member_parts(const F* parts, int64_t size, int used, F* out) {
  for (int t = 0; t < used; ++t)
    for (int64_t i = 0; i < size; ++i) out[i] += parts[size * t + i];
}

}  // namespace pyrnn
