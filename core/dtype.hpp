// DType: the element type of a tensor.
//
// float32 is kiln's working type; float64 exists so gradient checks are tight; int64 carries labels and
// argmax indices; int8 holds quantized weights in int8 model files (quant/); bfloat16 (core/bfloat16.hpp)
// holds activations under mixed precision (`--precision bf16`), with float32 master weights. float16 and
// the other small integer types are named so storage, printing and the checkpoint format can grow into
// them; compute kernels reject a dtype they have no kernel for with a clear error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/bfloat16.hpp"

namespace kiln {

enum class DType : std::uint8_t { Float32, Float64, BFloat16, Float16, Int32, Int64, UInt8, Int8 };

constexpr std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16: return 2;
    case DType::Float16: return 2;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Int8:
      return 1;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Int8:
      return "int8";
  }
  return "unknown";
}

constexpr bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::BFloat16 ||
         dtype == DType::Float16;
}

// The C++ type behind a dtype, for the types kernels compute in.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <>
struct dtype_of<bfloat16> {
  static constexpr DType value = DType::BFloat16;
};
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::UInt8; };
template <>
struct dtype_of<std::int8_t> {
  static constexpr DType value = DType::Int8;
};
template <typename T> inline constexpr DType dtype_of_v = dtype_of<T>::value;

}  // namespace kiln
