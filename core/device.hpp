// Device: where a tensor's storage lives, the CPU or a CUDA device. The dispatch seam (one function per op
// in kernels/<op>/dispatch.cpp) routes on it, so layers never ask.
#pragma once

#include <string>
#include <string_view>

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

// "cpu", "cuda" (cuda:0) or "cuda:N", as --device takes it; throws kiln::Error naming the text otherwise.
// Says nothing of whether the device exists (cuda::require_device does).
Device parse_device(std::string_view text);

}  // namespace kiln
