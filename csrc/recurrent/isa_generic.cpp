// The recurrent time loops for baseline x86-64 (SSE2) and every other CPU; see isa.inc.
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace pyrnn {
namespace isa_generic {
constexpr int64_t kVecBytes = 16;
constexpr int kMR = 6;
}  // namespace isa_generic
}  // namespace pyrnn

#define PYRNN_ISA_NS isa_generic
#include "isa.inc"

namespace pyrnn {
const KernelTable& kernels_generic() {
  static const KernelTable t{Isa::Generic, isa_generic::isa_table<float>(), isa_generic::isa_table<double>()};
  return t;
}
}  // namespace pyrnn
