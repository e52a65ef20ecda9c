// The CUDA device dialect as plain C++, for running kiln's .cu files on the CPU (tests/emulation/
// cuda_emulator.cpp). Force-included (-include) ahead of every source of the emulated backend and its tests,
// with KILN_CUDA_EMULATION defined; the .cu files themselves are not changed. What a ladder step's device code
// may use is listed at the top of kernels/ladder/launch.cuh; this header defines it, and what the backend's
// kernels use besides:
//
//   __global__ __device__ __host__     nothing: a kernel is an ordinary function, run once per thread
//   __grid_constant__                  nothing: a kernel's parameters are its function's
//   __shared__                         static: blocks run one after another, so a static array is the
//                                      running block's shared memory (not poisoned between blocks: only the
//                                      dynamic shared memory is, see cuda_emulator.hpp)
//   threadIdx blockIdx blockDim gridDim  read-only views of the emulator's per-thread values
//   __syncthreads, __syncwarp, __shfl_*_sync   the emulator's block and warp barriers
//   float2 float4 int2 int4 uint2 uint4 make_*  with CUDA's alignments (8 and 16 bytes)
//   __float_as_uint and friends, __fmaf_rn, __fadd_rn / __fmul_rn / __dadd_rn / __dmul_rn, __ldg, isnan /
//   isinf / isfinite, min / max, warpSize
#pragma once

#ifndef KILN_CUDA_EMULATION
#error "tests/emulation/cuda_shim.hpp is for builds with KILN_CUDA_EMULATION (the CPU emulator) only"
#endif

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define __grid_constant__

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_size = 1, unsigned y_size = 1, unsigned z_size = 1)
      : x(x_size), y(y_size), z(z_size) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace kiln::emulation {
// Set by the emulator before each thread of the grid runs (cuda_emulator.cpp).
extern thread_local uint3 thread_index;
extern thread_local uint3 block_index;
extern thread_local dim3 block_size;
extern thread_local dim3 grid_size;

// The block barrier; the warp barrier (mask: the lanes taking part, which must be the whole warp).
void sync_threads();
void sync_warp(unsigned mask);

enum class ShuffleMode { Index, Up, Down, Xor };
// Lane l receives the `bytes`-byte value of the lane the mode names (CUDA's rules, segments of `width`
// lanes), or its own where that lane lies outside its segment.
void warp_shuffle(unsigned mask, const void* value, void* result, std::size_t bytes, ShuffleMode mode,
                  int lane_arg, int width);
}  // namespace kiln::emulation

#define threadIdx (static_cast<const uint3&>(::kiln::emulation::thread_index))
#define blockIdx (static_cast<const uint3&>(::kiln::emulation::block_index))
#define blockDim (static_cast<const dim3&>(::kiln::emulation::block_size))
#define gridDim (static_cast<const dim3&>(::kiln::emulation::grid_size))
inline constexpr int warpSize = 32;

inline void __syncthreads() { ::kiln::emulation::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::kiln::emulation::sync_warp(mask); }

template <typename T>
T kiln_emulated_shuffle(unsigned mask, T value, ::kiln::emulation::ShuffleMode mode, int lane_arg,
                        int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16, "a shuffle moves a register or two");
  T result;
  ::kiln::emulation::warp_shuffle(mask, &value, &result, sizeof(T), mode, lane_arg, width);
  return result;
}
template <typename T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
  return kiln_emulated_shuffle(mask, value, ::kiln::emulation::ShuffleMode::Index, src_lane, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return kiln_emulated_shuffle(mask, value, ::kiln::emulation::ShuffleMode::Up, static_cast<int>(delta),
                               width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return kiln_emulated_shuffle(mask, value, ::kiln::emulation::ShuffleMode::Down, static_cast<int>(delta),
                               width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return kiln_emulated_shuffle(mask, value, ::kiln::emulation::ShuffleMode::Xor, lane_mask, width);
}

// Vector types, aligned as CUDA's are (a float4 load needs 16 bytes).
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) int2 {
  int x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }

// Bit casts and intrinsics.
inline unsigned __float_as_uint(float value) { return std::bit_cast<unsigned>(value); }
inline float __uint_as_float(unsigned bits) { return std::bit_cast<float>(bits); }
inline int __float_as_int(float value) { return std::bit_cast<int>(value); }
inline float __int_as_float(int bits) { return std::bit_cast<float>(bits); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
// The round-to-nearest arithmetic intrinsics: kernels use them where the compiler must not contract a
// product and a sum into one fused multiply-add. Plain C++ arithmetic on x86-64 (SSE, no FMA contraction
// in the baseline build) rounds each operation once, as they do.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fdividef(float a, float b) { return a / b; }
template <typename T>
T __ldg(const T* pointer) {
  return *pointer;
}

// CUDA's device math puts the classification functions in the global namespace.
using std::isfinite;
using std::isinf;
using std::isnan;

// CUDA's min and max for device code: the same type on both sides.
inline int min(int a, int b) { return b < a ? b : a; }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return b < a ? b : a; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long min(long a, long b) { return b < a ? b : a; }
inline long max(long a, long b) { return a < b ? b : a; }
inline unsigned long min(unsigned long a, unsigned long b) { return b < a ? b : a; }
inline unsigned long max(unsigned long a, unsigned long b) { return a < b ? b : a; }
inline long long min(long long a, long long b) { return b < a ? b : a; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return b < a ? b : a; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a < b ? b : a; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
