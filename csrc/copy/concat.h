// Concatenation along the last axis and its adjoint, the split: R rows, part k F_k values wide, the
// whole row F = sum_k F_k values; values of `bytes` bytes (4 or 8: float, double), copied exactly.
//
//   concat: y[r, off_k + c] = x_k[r, c]      split: x_k[r, c] = y[r, off_k + c]      (off_k = sum_{j<k} F_j)
//
// Threads: the rows are cut into chunks the members of the kernels' team take from a queue, when the
// copy is large enough for a team to pay (a streaming kernel, common/threads.h); no cancellation (a copy
// of memory, over in milliseconds).
#pragma once

#include <cstdint>
#include <vector>

namespace pyrnn {

// parts[k] points to part k's (R, widths[k]) values, y to (R, sum widths)
void concat_last(int64_t R, const std::vector<const void*>& parts, const std::vector<int64_t>& widths, void* y,
                 int bytes);
void split_last(int64_t R, const void* y, const std::vector<void*>& parts, const std::vector<int64_t>& widths,
                int bytes);

}  // namespace pyrnn
