// What both ladder tables (kernels/gemm/ladder/steps.cpp, kernels/conv2d/ladder/steps.cpp) need about a
// step's operands: a typed launcher behind the tables' untyped signature, the 16-byte start the vector copies
// need, and the int range the kernels index in.
#pragma once

#include <climits>
#include <cstdint>
#include <string_view>

#include "core/error.hpp"

namespace kiln::kernels::ladder {

// Gives a launcher typed on its operands (float, or bfloat16) the tables' untyped signature, in which the two
// inputs are `const void*` and the output float.
template <typename Shape, typename Operand,
          void (*typed)(const Shape&, const Operand*, const Operand*, float*)>
void untyped(const Shape& shape, const void* first, const void* second, float* output) {
  typed(shape, static_cast<const Operand*>(first), static_cast<const Operand*>(second), output);
}

// Whether a tensor of `elements` can be indexed with int, as the kernels do.
constexpr bool indexable_with_int(std::int64_t elements) { return elements <= INT_MAX; }

// Throws a kiln::Error naming `ladder` and `step` unless both inputs and the output start on 16 bytes: the
// steps whose copies move 16 bytes at a time call it (a table cannot see pointers).
inline void require_16_byte_operands(std::string_view ladder, std::string_view step, const void* first,
                                     const void* second, const float* output) {
  const auto on_16_bytes = [](const void* pointer) {
    return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0;
  };
  KILN_CHECK(on_16_bytes(first) && on_16_bytes(second) && on_16_bytes(output), ladder, " ", step,
             ": its inputs and output must start on 16 bytes (its copies move 16 bytes at a time)");
}

}  // namespace kiln::kernels::ladder
