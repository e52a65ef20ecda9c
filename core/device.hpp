// Device: where a tensor's storage lives. CPU today; the CUDA kind is named so the dispatch seam
// (one function per op in kernels/<op>/dispatch.cpp) can route to a GPU kernel without touching layers.
#pragma once

#include <string>

namespace kiln {

enum class DeviceKind : unsigned char { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  static constexpr Device cpu() { return {DeviceKind::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceKind::CUDA, index}; }

  constexpr bool is_cpu() const { return kind == DeviceKind::CPU; }
  constexpr bool is_cuda() const { return kind == DeviceKind::CUDA; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  friend constexpr bool operator==(Device, Device) = default;
};

}  // namespace kiln
