// Kernel scratch: uninitialised arrays on a cache line's boundary, the one allocation the kernels'
// buffers share (recurrent, conv, pool2d; the bf16 packs). new[] and NumPy put large blocks 16 bytes past
// a line, so each 512-bit load or store, and each AMX tile row, touched two lines: a TILELOADD +
// TDPBF16PS step ran 2.5x slower (69 against 27 cycles), LSTM I=H=512 bf16 inference 1.11x once aligned.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace pyrnn {

struct FreeScratch {
  void operator()(void* p) const { std::free(p); }
};

template <typename T>
using Scratch = std::unique_ptr<T[], FreeScratch>;

// n values of T on a 64-byte boundary (null for n <= 0), uninitialised: every element is written before it is
// read; throws std::bad_alloc
template <typename T>
Scratch<T> scratch(int64_t n) {
  if (n <= 0) return nullptr;
  void* p = std::aligned_alloc(64, (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64);
  if (p == nullptr) throw std::bad_alloc();
  return Scratch<T>(static_cast<T*>(p));
}

// n values rounded up to whole cache lines: the next buffer carved after them starts on a line
template <typename T>
int64_t lines(int64_t n) {
  constexpr int64_t per = 64 / sizeof(T);
  return (n + per - 1) / per * per;
}

}  // namespace pyrnn
