// See concat.h. A part's run of a row is copied as values of a fixed-size integer type (so that a
// short run, 16 channels, is a few vector moves rather than a memcpy call), the rows of a chunk in
// order.
#include "concat.h"

#include <algorithm>
#include <cstring>

#include "../common/threads.h"

namespace pyrnn {

namespace {

constexpr int64_t kChunkValues = int64_t(1) << 15;  // values per chunk of rows (128 KiB of float)

// dst[r * dst_stride + c] = src[r * src_stride + c], rows [r0, r1), c < n
template <typename T>
void copy_rows(const T* __restrict src, int64_t src_stride, T* __restrict dst, int64_t dst_stride, int64_t n,
               int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* s = src + r * src_stride;
    T* d = dst + r * dst_stride;
    for (int64_t c = 0; c < n; ++c) d[c] = s[c];
  }
}

// fn(r0, r1) over chunks of rows, on the team when the copy pays for one
template <typename Fn>
void for_row_chunks(int64_t R, int64_t F, Fn&& fn) {
  if (R <= 0 || F <= 0) return;
  const int64_t rows = std::max<int64_t>(1, kChunkValues / F), chunks = (R + rows - 1) / rows;
  WorkQueue queue(chunks);
  auto region = [&](int) {
    for (int64_t c; queue.take(c);) fn(c * rows, std::min(R, (c + 1) * rows));
  };
  parallel_optional(team_for(2 * R * F * kStreamFlopsPerElement, chunks), region);  // read once, write once
}

template <typename T>
void concat_typed(int64_t R, const std::vector<const void*>& parts, const std::vector<int64_t>& widths, void* y) {
  int64_t F = 0;
  for (int64_t w : widths) F += w;
  for_row_chunks(R, F, [&](int64_t r0, int64_t r1) {
    int64_t off = 0;
    for (size_t k = 0; k < parts.size(); ++k) {
      copy_rows(static_cast<const T*>(parts[k]), widths[k], static_cast<T*>(y) + off, F, widths[k], r0, r1);
      off += widths[k];
    }
  });
}

template <typename T>
void split_typed(int64_t R, const void* y, const std::vector<void*>& parts, const std::vector<int64_t>& widths) {
  int64_t F = 0;
  for (int64_t w : widths) F += w;
  for_row_chunks(R, F, [&](int64_t r0, int64_t r1) {
    int64_t off = 0;
    for (size_t k = 0; k < parts.size(); ++k) {
      copy_rows(static_cast<const T*>(y) + off, F, static_cast<T*>(parts[k]), widths[k], widths[k], r0, r1);
      off += widths[k];
    }
  });
}

}  // namespace

void concat_last(int64_t R, const std::vector<const void*>& parts, const std::vector<int64_t>& widths, void* y,
                 int bytes) {
  if (bytes == 8)
    concat_typed<uint64_t>(R, parts, widths, y);
  else
    concat_typed<uint32_t>(R, parts, widths, y);
}

void split_last(int64_t R, const void* y, const std::vector<void*>& parts, const std::vector<int64_t>& widths,
                int bytes) {
  if (bytes == 8)
    split_typed<uint64_t>(R, y, parts, widths);
  else
    split_typed<uint32_t>(R, y, parts, widths);
}

}  // namespace pyrnn
