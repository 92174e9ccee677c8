// with_channels: a runtime channel count as a compile-time one, for the few counts the loops over a pixel's
// channels specialise (the pooling loops of pool2d/lines.inc, the planar copies of conv/planar.cpp).
#pragma once

#include <cstdint>
#include <type_traits>

namespace pyrnn {

// Calls fn(std::integral_constant<int, C>) for the small channel counts (LeNet's 6 and 16, RGB's 3, ...: 1-4, 6,
// 8, 12, 16), so a loop over C channels unrolls into a few vector operations; fn(std::integral_constant<int, 0>)
// otherwise (loops over the runtime C, short ones paying a loop and its remainder each time)
template <typename Fn>
inline void with_channels(int64_t C, Fn&& fn) {
  switch (C) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 6: return fn(std::integral_constant<int, 6>{});
    case 8: return fn(std::integral_constant<int, 8>{});
    case 12: return fn(std::integral_constant<int, 12>{});
    case 16: return fn(std::integral_constant<int, 16>{});
    default: return fn(std::integral_constant<int, 0>{});
  }
}

}  // namespace pyrnn
