// The per-instruction-set half of the activation family: the loops over one span of values, compiled once
// per ISA from spans.inc (isa_*.cpp); activation.cpp splits an array into spans over the team.
// Legend and equations: activation.h.
#pragma once

#include <cstdint>

#include "../common/cpu.h"
#include "activation.h"

namespace pyrnn {

template <typename F>
struct ActivationSpans {
  // indexed by Activation: y[0, n) from x[0, n)
  void (*forward[kActivations])(const F* x, F* y, int64_t n, F slope);
  // indexed by Activation: dx[0, n) from saved[0, n) and dy[0, n)
  void (*backward[kActivations])(const F* saved, const F* dy, F* dx, int64_t n, F slope);
};

struct ActivationTable {
  ActivationSpans<float> f32;
  ActivationSpans<double> f64;
};

// One table per instruction set, each defined by its isa_*.cpp (the wider ones on x86-64 builds only).
template <Isa isa>
const ActivationTable& activation_table();
template <>
const ActivationTable& activation_table<Isa::Generic>();
template <>
const ActivationTable& activation_table<Isa::Avx2>();
template <>
const ActivationTable& activation_table<Isa::Avx512>();

}  // namespace pyrnn
