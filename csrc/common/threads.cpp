// See threads.h.
#include "threads.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define PYRNN_PAUSE() _mm_pause()
#else
#define PYRNN_PAUSE() std::this_thread::yield()
#endif

#if defined(__linux__)
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#endif

namespace pyrnn {

namespace {

std::atomic<int> g_spins{kDefaultSpins};  // set_spin_budget
int spin_budget() { return oversubscribed() ? 0 : g_spins.load(std::memory_order_relaxed); }

// Sleep while *word == expected, at most ~1 ms (a lost wake-up, or an abort, costs 1 ms, never a hang);
// elsewhere than Linux, a yield.
void sleep_while(std::atomic<unsigned>& word, unsigned expected) {
#if defined(__linux__)
  static_assert(sizeof(std::atomic<unsigned>) == sizeof(unsigned), "a futex word is 32 bits");
  struct timespec timeout = {0, 1000000};
  syscall(SYS_futex, reinterpret_cast<unsigned*>(&word), FUTEX_WAIT_PRIVATE, expected, &timeout, nullptr, 0);
#else
  (void)word, (void)expected;
  std::this_thread::yield();
#endif
}

void wake_all(std::atomic<unsigned>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<unsigned*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

// A region is published as one atomic ticket, (sequence number << 17) | optional bit << 16 | team
// size, so a worker decides from one snapshot whether it takes part; only members read
// fn/ctx/barrier, and the caller waits for every member, so those stay valid while a member reads
// them. (A worker that sat a region out must never read a later region's fields under the old
// ticket: it would run that region twice, the second time after its barrier and plan were gone.)
// In a region with optional members a worker first takes its claim for the region's sequence
// number; the caller, done with its own part, takes the claims left and does not wait for those
// members: whoever takes a claim first wins it, so a worker that comes late skips the region
// without reading its fields.
constexpr int kTicketBits = 16;  // team sizes below 65536
constexpr unsigned long long kOptional = 1ULL << kTicketBits;
constexpr int kSequenceShift = kTicketBits + 1;

// Takes `claim` for region `seq` (claims only grow): true for the first taker, worker or caller.
bool take(std::atomic<unsigned long long>& claim, unsigned long long seq) {
  unsigned long long seen = claim.load(std::memory_order_acquire);
  while (seen < seq)
    if (claim.compare_exchange_weak(seen, seq, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  return false;
}

std::atomic<int> g_awake{0};  // the team's workers not asleep: running a region or spinning for the next one

struct Team {
  std::mutex region;  // one parallel region at a time
  std::mutex m;
  std::condition_variable cv;
  std::atomic<unsigned long long> ticket{0};
  std::atomic<unsigned> remaining{0};  // members still in the region; a futex word the caller sleeps on
  std::atomic<bool> caller_sleeps{false};
  RegionFn fn = nullptr;
  void* ctx = nullptr;
  SpinBarrier* barrier = nullptr;
  std::exception_ptr error;          // the first exception a worker threw in the current region (guarded by m)
  std::vector<std::thread> workers;  // worker w has tid w + 1
  // worker w's claim: the last region with optional members it joined or was let off (stable addresses:
  // a worker keeps a pointer to its own; the caller reads them under the region lock, as grow adds them)
  std::deque<std::atomic<unsigned long long>> claims;

  void work(int tid, std::atomic<unsigned long long>* claim) {
    unsigned long long seen = 0;
    for (;;) {
      unsigned long long e;
      for (int spins = 0, budget = spin_budget(); (e = ticket.load(std::memory_order_acquire)) == seen;) {
        if (++spins < budget) {
          PYRNN_PAUSE();
        } else {
          std::unique_lock<std::mutex> lk(m);
          g_awake.fetch_sub(1, std::memory_order_relaxed);
          cv.wait(lk, [&] { return ticket.load(std::memory_order_acquire) != seen; });
          g_awake.fetch_add(1, std::memory_order_relaxed);
        }
      }
      seen = e;
      const int n = static_cast<int>(e & ((1ULL << kTicketBits) - 1));
      // a member of this region (of an optional one, if the caller has not let us off): the caller waits
      // for us, its fields stay valid
      if (tid < n && (!(e & kOptional) || take(*claim, e >> kSequenceShift))) {
        try {
          fn(ctx, tid, n, *barrier);
        } catch (const RegionAborted&) {  // another member failed first
        } catch (...) {
          {
            std::lock_guard<std::mutex> lk(m);
            if (!error) error = std::current_exception();
          }
          barrier->abort();
        }
        leave();
      }
    }
  }

  void leave() {  // a member is done with the region
    remaining.fetch_sub(1, std::memory_order_seq_cst);
    if (caller_sleeps.load(std::memory_order_seq_cst)) wake_all(remaining);
  }

  int grow(int want_workers) {  // start workers up to want_workers; returns how many exist
    while (static_cast<int>(workers.size()) < want_workers) {
      const int tid = static_cast<int>(workers.size()) + 1;
      std::atomic<unsigned long long>* claim = &claims.emplace_back(0);
      try {
        g_awake.fetch_add(1, std::memory_order_relaxed);
        workers.emplace_back([this, tid, claim] { work(tid, claim); });
        workers.back().detach();
      } catch (const std::system_error&) {
        g_awake.fetch_sub(1, std::memory_order_relaxed);
        claims.pop_back();
        break;  // no more threads to be had: run with those there are
      }
    }
    return static_cast<int>(workers.size());
  }
};

Team* g_team = nullptr;  // never destroyed: its workers sleep until the process ends
std::once_flag g_team_once;

int default_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

std::atomic<int> g_max{0};  // 0: not set yet
std::atomic<long long> g_parallel_min_flops{1LL << 20};

Team& team() {
  std::call_once(g_team_once, [] {
    g_team = new Team;
#if defined(__linux__)
    // the child of a fork has none of the parent's threads: give it a fresh team
    pthread_atfork(nullptr, nullptr, [] {
      g_team = new Team;
      g_awake.store(0);
    });
#endif
  });
  return *g_team;
}

}  // namespace

void pause_briefly() { PYRNN_PAUSE(); }

void SpinBarrier::abort() {
  aborted_.store(true, std::memory_order_seq_cst);
  wake_all(generation_);
}

void SpinBarrier::wait() {
  if (n_ <= 1) return;
  if (aborted_.load(std::memory_order_acquire)) throw RegionAborted{};
  // the generation cannot move on before this thread arrives, so reading it first is safe
  const unsigned gen = generation_.load(std::memory_order_acquire);
  if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    count_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_all(generation_);
    return;
  }
  // a sleeper counts itself before it checks the generation a last time (the futex compares it again):
  // either the last arrival sees it counted and wakes it, or it sees the new generation
  for (int spins = 0, budget = spin_budget(); generation_.load(std::memory_order_acquire) == gen; ++spins) {
    if (aborted_.load(std::memory_order_acquire)) throw RegionAborted{};
    if (spins < budget) {
      PYRNN_PAUSE();
    } else {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (!aborted_.load(std::memory_order_seq_cst)) sleep_while(generation_, gen);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}

int max_threads() {  // at most 2^16 - 1: a team size must fit in a ticket
  int n = g_max.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    g_max.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_max_threads(int n) {
  const int most = (1 << kTicketBits) - 1;
  g_max.store(n < 1 ? 1 : n > most ? most : n, std::memory_order_relaxed);
}

namespace {

std::atomic<int> g_others_override{-1};
std::atomic<long long> g_sample_at{LLONG_MIN / 2};     // steady-clock ns of the last sample
std::atomic<int> g_others_now{0}, g_others_before{0};  // the last two samples

#if defined(__linux__)
int running_threads() {  // /proc/loadavg: "1.0 0.9 0.8 R/T pid", R = runnable threads of the machine, or -1
  const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  const ssize_t k = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (k <= 0) return -1;
  buf[k] = 0;
  const char* c = buf;
  for (int fields = 0; fields < 3 && *c; ++c)
    if (*c == ' ') ++fields;
  int r = 0;
  for (; *c >= '0' && *c <= '9'; ++c) r = r * 10 + (*c - '0');
  return *c == '/' ? r : -1;
}

// This process's runnable threads (state R in /proc/self/task/*/stat), or -1: the caller, the team's
// members, and the threads of the other libraries in the process (OpenBLAS', PyTorch's OpenMP team) that
// spin for a while after their own work. Those are no other program's load: counted as others, the
// caller's next regions would run alone after every torch or NumPy call.
int own_running_threads() {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  int running = 0;
  char path[64], buf[256];
  for (struct dirent* e; (e = readdir(dir)) != nullptr;) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof(path), "/proc/self/task/%.20s/stat", e->d_name);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // the thread ended meanwhile
    const ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0) continue;
    buf[k] = 0;
    const char* paren = strrchr(buf, ')');  // "tid (comm) S ...": the name may hold spaces and parentheses
    if (paren && paren[1] == ' ' && paren[2] == 'R') ++running;
  }
  closedir(dir);
  return running;
}
#endif

int read_online_cpus() {
#if defined(__linux__)
  const int n = get_nprocs();  // glibc reads /sys/devices/system/cpu/online: an open, a read and a close
  return n > 0 ? n : default_threads();
#else
  return default_threads();
#endif
}

// The online CPUs, as last read: every barrier wait and region start asks (through spin_budget and
// free_threads), so the file is read once, then again with each load sample (others_now, at most every 10 ms)
std::atomic<int> g_online{0};
int online_cpus() {
  int n = g_online.load(std::memory_order_relaxed);
  if (n == 0) g_online.store(n = read_online_cpus(), std::memory_order_relaxed);
  return n;
}

int others_now() {  // the other runnable threads, min of the last two samples
  const int forced = g_others_override.load(std::memory_order_relaxed);
  if (forced >= 0) return forced;
#if defined(__linux__)
  // /proc/loadavg counts the whole machine: when this process may run on fewer CPUs than it has (a cpuset,
  // a container pinned to some cores), the count says nothing about ours
  static const bool whole_machine = default_threads() >= online_cpus();
  if (!whole_machine) return 0;
  const long long now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  long long at = g_sample_at.load(std::memory_order_relaxed);
  if (now - at >= 10000000 && g_sample_at.compare_exchange_strong(at, now, std::memory_order_relaxed)) {
    g_online.store(read_online_cpus(), std::memory_order_relaxed);
    const int running = running_threads();
    // less this thread and the team's workers that are awake (spinning after a region counts as running);
    // if that leaves others, less this process's runnable threads instead (this one, the team's, and other
    // libraries' spinning pools; a scan of ~5 us per thread, so only then)
    int others = running < 0 ? 0 : std::max(0, running - 1 - g_awake.load(std::memory_order_relaxed));
    if (others > 0) {
      const int own = own_running_threads();
      if (own > 0) others = std::max(0, running - own);
    }
    g_others_before.store(g_others_now.load(std::memory_order_relaxed), std::memory_order_relaxed);
    g_others_now.store(others, std::memory_order_relaxed);
  }
  return std::min(g_others_now.load(std::memory_order_relaxed), g_others_before.load(std::memory_order_relaxed));
#else
  return 0;
#endif
}

}  // namespace

int free_threads() {
  const int n = max_threads();
  return std::max(1, std::min(n, online_cpus() - others_now()));
}

bool oversubscribed() {  // the last samples only: no new one (cheap, for the waits)
  const int forced = g_others_override.load(std::memory_order_relaxed);
  const int others = forced >= 0 ? forced
                                 : std::min(g_others_now.load(std::memory_order_relaxed),
                                            g_others_before.load(std::memory_order_relaxed));
  return others + max_threads() > online_cpus();
}

void set_others_running(int n) {
  g_others_override.store(n < 0 ? -1 : n, std::memory_order_relaxed);
  g_sample_at.store(LLONG_MIN / 2, std::memory_order_relaxed);
  g_others_now.store(0, std::memory_order_relaxed);
  g_others_before.store(0, std::memory_order_relaxed);
}

int others_running() { return others_now(); }

void set_spin_budget(int spins) { g_spins.store(spins < 0 ? kDefaultSpins : spins, std::memory_order_relaxed); }
int spin_budget_setting() { return g_spins.load(std::memory_order_relaxed); }

void set_parallel_min_flops(long long flops) { g_parallel_min_flops.store(flops < 0 ? 0 : flops); }
long long parallel_min_flops() { return g_parallel_min_flops.load(std::memory_order_relaxed); }

int team_for(long long flops, long long units) {
  if (flops < 4 * parallel_min_flops() || units < 2) return 1;
  return static_cast<int>(std::min<long long>(units, max_threads()));
}

int parallel_run(int want, RegionFn fn, void* ctx, bool optional_members) {
  int n = want < max_threads() ? want : max_threads();
  if (n > 1) n = std::min(n, free_threads());  // one member per core the machine has free
  if (n <= 1) {
    SpinBarrier single(1);
    fn(ctx, 0, 1, single);
    return 1;
  }
  Team& tm = team();
  std::unique_lock<std::mutex> region(tm.region, std::try_to_lock);
  if (!region.owns_lock() || (n = 1 + std::min(n - 1, tm.grow(n - 1))) == 1) {
    SpinBarrier single(1);
    fn(ctx, 0, 1, single);
    return 1;
  }
  SpinBarrier barrier(n);
  tm.fn = fn, tm.ctx = ctx, tm.barrier = &barrier;  // no member of an earlier region reads them now
  tm.remaining.store(static_cast<unsigned>(n - 1), std::memory_order_relaxed);
  unsigned long long seq;
  {
    std::lock_guard<std::mutex> lk(tm.m);
    seq = (tm.ticket.load(std::memory_order_relaxed) >> kSequenceShift) + 1;
    tm.ticket.store((seq << kSequenceShift) | (optional_members ? kOptional : 0) | static_cast<unsigned long long>(n),
                    std::memory_order_release);
  }
  tm.cv.notify_all();
  std::exception_ptr error;
  try {
    fn(ctx, 0, n, barrier);
  } catch (const RegionAborted&) {  // a worker failed first: its exception is in tm.error
  } catch (...) {
    error = std::current_exception();
    barrier.abort();
  }
  // let off the optional members that have not started (they will skip the region), then wait for every
  // member that did: they use this stack frame's barrier and the region's data
  if (optional_members)
    for (int t = 1; t < n; ++t)
      if (take(tm.claims[static_cast<size_t>(t - 1)], seq)) tm.remaining.fetch_sub(1, std::memory_order_acq_rel);
  for (int spins = 0, budget = spin_budget();; ++spins) {
    const unsigned left = tm.remaining.load(std::memory_order_seq_cst);
    if (left == 0) break;
    if (spins < budget) {
      PYRNN_PAUSE();
    } else {  // as SpinBarrier::wait: announce the sleep, then the futex compares `left` again
      tm.caller_sleeps.store(true, std::memory_order_seq_cst);
      if (tm.remaining.load(std::memory_order_seq_cst) == left) sleep_while(tm.remaining, left);
      tm.caller_sleeps.store(false, std::memory_order_relaxed);
    }
  }
  {
    std::lock_guard<std::mutex> lk(tm.m);
    if (!error) error = tm.error;
    tm.error = nullptr;
  }
  if (error) std::rethrow_exception(error);
  return n;
}

}  // namespace pyrnn
