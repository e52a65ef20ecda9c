// Warpgroup-level tensor-core multiplies (wgmma.mma_async: Hopper, built for sm_90a) and the ordering they
// need, with the shared-memory layout and register layout written out. Included by .cu files only; the CPU
// emulator (tests/emulation) defines the same functions from the same layouts.
//
// A warpgroup is 4 consecutive warps, 128 threads, the first warp's index a multiple of 4. One wgmma adds a
// 64 x 16 tile of A times a 16 x N tile of B (N a multiple of 8 up to 256; here 16, 32, 64 or 128) to a
// 64 x N float accumulator that lives in the warpgroup's registers, N / 2 floats per thread. What changes
// from mma.sync (mma.cuh):
//   - both operands come straight from shared memory, each named by a 64-bit matrix descriptor: no ldmatrix,
//     no fragments in registers, so the registers go to accumulators and the warps to issuing copies;
//   - the instruction is asynchronous: it returns at once, and its results (and its reads of shared memory)
//     are only known complete after wgmma_wait. A kernel issues a batch, commits it as a group, overlaps the
//     next tile's copies with it, and waits;
//   - it is larger (64 x N x 16 per instruction against mma.sync's 16 x 8 x 16: 4x at N = 8, 64x at N = 128)
//     and on an H100 runs at the tensor cores' full rate, where mma.sync reaches about two thirds of it.
//
// Accumulators (m64nNk16, float). Thread t of the warpgroup: warp = t / 32, group = (t % 32) / 4,
// quad = t % 4. Its d[i], i < N / 2, is
//     D(row 16 warp + group + 8 ((i / 2) % 2),  col 8 (i / 4) + 2 quad + i % 2)
// that is, mma.sync's 16 x 8 accumulator layout (mma.cuh) repeated across N in 8-column tiles, one 16-row
// slab per warp.
//
// In these terms k is the reduction and
//     D[m, n] += sum over k < 16 of A[m, k] B[k, n]
//
// Shared memory: the 128-byte swizzle, 16-bit elements, in its two orientations. Its unit is an atom of 8
// lines of 128 bytes (64 bfloat16 each), 1024 bytes, starting on 1024 bytes; line r's 16-byte chunk c lives
// at byte
//     128 r + 16 (c XOR (r % 8))                                               (swizzled_128b below)
// The XOR spreads the 8 lines' chunk c over all 8 16-byte slots of 128 bytes: copies that fill whole lines,
// and the tensor cores' reads of 8 lines, touch every bank once. The hardware applies the XOR to the address
// bits it forms (bits 4-6 ^= bits 7-9), which is why an atom must start on 1024 bytes, and why a slice of a
// tile is named by moving the start address, as if unswizzled.
//   K-major (an operand stored [m][k] or [n][k]): a line is one row (m or n) and 64 k. A tile of
//     R rows is R / 8 atoms, 1024 bytes apart: the stride byte offset. The leading byte offset (between core
//     matrices along k) is unused: a k16 slice, 32 bytes, lies inside the line. Slice j starts 32 j bytes in.
//     (k_major_128b_descriptor)
//   MN-major (B stored [k][n], as a row-major GEMM's B is, or A stored [k][m]; wgmma's "transposed"
//     operands): a line is one k and 64 n (or m). A 64-wide column of n is a stack of atoms along k, 8 k
//     each, 1024 bytes apart (the stride byte offset); the next 64 n start `leading` bytes on (the leading
//     byte offset). Slice j (k = 16 j ..) starts 2048 j bytes in. (mn_major_128b_descriptor)
//
// TF32 (wgmma_tf32, m64nNk8): float operands, of which the tensor cores multiply the top 19 bits (sign,
// exponent, 10 mantissa bits; the low 13 are ignored, a truncation toward zero). A k8 slice is 32 bytes, as
// a bfloat16 k16 slice is, so a 128-byte line holds 32 k and the K-major descriptors and slice offsets above
// apply unchanged, counted in bytes. Both operands must be K-major: the instruction's transpose flags exist
// for 16-bit types only, so a row-major GEMM's B ([k][n]) must be transposed before it reaches shared memory,
// or reach the tensor cores another way:
//
// A from registers (wgmma_tf32_register_a, m64nNk8): A's 64 x 8 comes from the warpgroup's registers, four
// a thread, in mma.sync's m16n8k8 TF32 layout (mma.cuh) with one 16-row slab per warp: thread t's a[i] is
//     A(row 16 warp + group + 8 (i % 2),  k quad + 4 (i / 2))
// Registers have no orientation, so whatever layout A has in shared memory, the threads load it into this
// one; B still comes K-major from shared memory. The registers are read while the wgmma runs: they must not
// change until a wgmma_wait has retired it (the compiler keeps them, as ptxas knows the instruction), and a
// wgmma_fence must come between the loads that fill them and the wgmma.
//
// Ordering, in the order a main loop meets it:
//   fence_proxy_async_shared()  in every thread that wrote a tile (cp.async copies landed, or plain stores),
//                               before the __syncthreads that precedes the wgmma reading it: the tensor cores
//                               read shared memory through the async proxy, which is not ordered with
//                               ordinary writes otherwise.
//   wgmma_fence(acc)            before a batch of wgmma, once ordinary code has touched the accumulators
//                               (zeroed them, read them) or filled the A registers of a register-A wgmma.
//   wgmma_bf16<N, a, b>(...)    the batch (or wgmma_tf32<N>, wgmma_tf32_register_a<N>); consecutive wgmma on
//                               the same accumulators need nothing between.
//   wgmma_commit_group()        closes the wgmma issued since the last commit into a group.
//   wgmma_wait<pending>(acc)    until at most `pending` groups are in flight: only then may the accumulators
//                               be read, or the shared memory (or A registers) a finished group read be
//                               overwritten.
// The acc arguments (any array of float) also tell the compiler that the accumulators change there, so that
// it moves no read of them across the wait.
#pragma once

#include <cstdint>

#include "kernels/ladder/cp_async.cuh"

namespace kiln::kernels::ladder {

// A 128-byte swizzle atom: 8 lines of 128 bytes, which must start on a multiple of its size (above).
inline constexpr int kSwizzleAtomBytes = 1024;

// The first byte of `shared` (dynamic shared memory) whose shared address is a multiple of
// kSwizzleAtomBytes: where a kernel's swizzled tiles start. The launch must ask for kSwizzleAtomBytes of
// slack beyond the tiles.
__device__ __forceinline__ unsigned char* first_swizzle_atom(unsigned char* shared) {
  return shared + (kSwizzleAtomBytes - shared_address(shared) % kSwizzleAtomBytes) % kSwizzleAtomBytes;
}

// Byte offset of line `row`'s 16-byte chunk `chunk` (0..7) in a stack of 128-byte-swizzled atoms (above).
__device__ __forceinline__ int swizzled_128b(int row, int chunk) {
  return row * 128 + 16 * (chunk ^ (row % 8));
}

// Which way a wgmma operand runs in shared memory (above); the value is the instruction's transpose flag.
enum class Major { K = 0, MN = 1 };

// A matrix descriptor (PTX ISA, "Matrix Descriptor Format") for 128-byte-swizzled 16-bit data:
//   bits  0-13  start address >> 4          bits 16-29  leading byte offset >> 4
//   bits 32-45  stride byte offset >> 4     bits 49-51  base offset (0: the atoms start on 1024 bytes)
//   bits 62-63  swizzle mode: 1 = 128 bytes
__device__ __forceinline__ std::uint64_t swizzled_128b_descriptor(const void* start, int leading_bytes,
                                                                  int stride_bytes) {
  const std::uint64_t address = shared_address(start);
  return ((address & 0x3ffff) >> 4) | static_cast<std::uint64_t>((leading_bytes >> 4) & 0x3fff) << 16 |
         static_cast<std::uint64_t>((stride_bytes >> 4) & 0x3fff) << 32 | std::uint64_t{1} << 62;
}
// A K-major tile's k-slice at `start` (the tile's start plus 32 bytes per k16 slice); 8-row atoms 1024 bytes
// apart; the unused leading byte offset 16 (the conventional 1).
__device__ __forceinline__ std::uint64_t k_major_128b_descriptor(const void* start) {
  return swizzled_128b_descriptor(start, 16, 1024);
}

// Narrower lines, for K-major operands whose reduction is only 16 or 32 bfloat16 wide (a convolution's 16- or
// 32-channel taps): the 32- and 64-byte swizzles. A line of `line_bytes` (32, 64 or 128) is one row; an atom
// is 8 lines, 8 line_bytes bytes, starting on a multiple of its size; line r's chunk c lies at
//     line_bytes r + 16 (c XOR ((line_bytes r / 128) % (line_bytes / 16)))
// which is the hardware's XOR of address bits 4.. with bits 7.. (one bit for 32 bytes, two for 64, three
// for 128: swizzled_128b's pattern when line_bytes is 128). The descriptor's mode: 3 (32 bytes), 2 (64), 1
// (128); its stride byte offset one atom.
__device__ __forceinline__ int swizzled(int row, int chunk, int line_bytes) {
  return row * line_bytes + 16 * (chunk ^ (row * line_bytes / 128 % (line_bytes / 16)));
}
__device__ __forceinline__ std::uint64_t k_major_descriptor(const void* start, int line_bytes) {
  const std::uint64_t mode = line_bytes == 128 ? 1 : line_bytes == 64 ? 2 : 3;
  const std::uint64_t address = shared_address(start);
  return ((address & 0x3ffff) >> 4) | std::uint64_t{1} << 16 |
         static_cast<std::uint64_t>((8 * line_bytes >> 4) & 0x3fff) << 32 | mode << 62;
}
// An MN-major tile's k-slice at `start` (the start of its first 64-wide column plus 2048 bytes per k16
// slice); atoms along k 1024 bytes apart, 64-wide columns `column_stride_bytes` apart.
__device__ __forceinline__ std::uint64_t mn_major_128b_descriptor(const void* start,
                                                                  int column_stride_bytes) {
  return swizzled_128b_descriptor(start, column_stride_bytes, 1024);
}

#ifdef KILN_CUDA_EMULATION
// The emulator (tests/emulation/cuda_emulator.cpp): each is a collective of the calling thread's warpgroup.
// A wgmma is queued with every thread's accumulators and computed when a wgmma_wait retires its group,
// from shared memory as it is then: a kernel that overwrites a tile before the wait, or reads its
// accumulators before it, gets wrong results there as it may on the GPU. A wgmma issued without a
// wgmma_fence since the last wait, or while some thread's landed cp.async copies await
// fence_proxy_async_shared, is an error; so is a cp.async into shared memory that a wgmma not yet retired
// reads (on the GPU the copy may land first).
void fence_proxy_async_shared();
void wgmma_fence_emulated();
void wgmma_commit_group();
void wgmma_wait_emulated(int pending);
void wgmma_bf16_emulated(int n, float* d, std::uint64_t a, std::uint64_t b, bool accumulate, Major a_major,
                         Major b_major);
void wgmma_tf32_emulated(int n, float* d, std::uint64_t a, std::uint64_t b, bool accumulate);
// A from the registers at `a` (this thread's four), read when the wgmma is retired, not when issued: a kernel
// that refills them before the wait gets wrong results here as it may on the GPU.
void wgmma_tf32_register_a_emulated(int n, float* d, const std::uint32_t* a, std::uint64_t b,
                                    bool accumulate);

template <typename Accumulators>
void wgmma_fence(Accumulators&) {
  wgmma_fence_emulated();
}
template <int pending, typename Accumulators>
void wgmma_wait(Accumulators&) {
  wgmma_wait_emulated(pending);
}
template <int N, Major a_major = Major::K, Major b_major = Major::K>
void wgmma_bf16(float (&d)[N / 2], std::uint64_t a, std::uint64_t b, bool accumulate) {
  static_assert(N == 16 || N == 32 || N == 64 || N == 128, "the tile widths wgmma.cuh provides");
  wgmma_bf16_emulated(N, d, a, b, accumulate, a_major, b_major);
}
template <int N>
void wgmma_tf32(float (&d)[N / 2], std::uint64_t a, std::uint64_t b, bool accumulate) {
  static_assert(N == 128, "the tile width wgmma_tf32 provides");
  wgmma_tf32_emulated(N, d, a, b, accumulate);
}
template <int N>
void wgmma_tf32_register_a(float (&d)[N / 2], const std::uint32_t (&a)[4], std::uint64_t b, bool accumulate) {
  static_assert(N == 128, "the tile width wgmma_tf32_register_a provides");
  wgmma_tf32_register_a_emulated(N, d, a, b, accumulate);
}
#else
// An empty asm that "changes" every float of `values`: the compiler must keep reads and writes of them on
// their side of it.
template <typename Accumulators>
__device__ __forceinline__ void fence_operands(Accumulators& values) {
  float* v = reinterpret_cast<float*>(&values);
#pragma unroll
  for (int i = 0; i < static_cast<int>(sizeof(Accumulators) / sizeof(float)); ++i)
    asm volatile("" : "+f"(v[i])::"memory");
}

__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

template <typename Accumulators>
__device__ __forceinline__ void wgmma_fence(Accumulators& accumulators) {
  fence_operands(accumulators);
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit_group() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

template <int pending, typename Accumulators>
__device__ __forceinline__ void wgmma_wait(Accumulators& accumulators) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(pending) : "memory");
#endif
  fence_operands(accumulators);
}

#define KILN_WGMMA_D8(i)                                                                      \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])

// d (+)= A[64, 16] B[16, N], bfloat16 operands named by descriptors, each K-major or MN-major as a_major and
// b_major say (A MN-major: its lines are one k and 64 m), float accumulators (layouts above); with accumulate
// false, d's old values are ignored. Built for anything but sm_90a, it traps: the launchers run it only where
// wgmma_available() (hopper.hpp) says the build and the device have it.
template <int N, Major a_major = Major::K, Major b_major = Major::K>
__device__ __forceinline__ void wgmma_bf16(float (&d)[N / 2], std::uint64_t a, std::uint64_t b,
                                           bool accumulate) {
  static_assert(N == 16 || N == 32 || N == 64 || N == 128, "the tile widths wgmma.cuh provides");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const int scale_d = accumulate ? 1 : 0;
  if constexpr (N == 16) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %10, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7"
        "}, %8, %9, accumulate, 1, 1, %11, %12;\n}\n"
        : KILN_WGMMA_D8(0)
        : "l"(a), "l"(b), "r"(scale_d), "n"(static_cast<int>(a_major)), "n"(static_cast<int>(b_major)));
  } else if constexpr (N == 32) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
        "}, %16, %17, accumulate, 1, 1, %19, %20;\n}\n"
        : KILN_WGMMA_D8(0), KILN_WGMMA_D8(8)
        : "l"(a), "l"(b), "r"(scale_d), "n"(static_cast<int>(a_major)), "n"(static_cast<int>(b_major)));
  } else if constexpr (N == 64) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, accumulate, 1, 1, %35, %36;\n}\n"
        : KILN_WGMMA_D8(0), KILN_WGMMA_D8(8), KILN_WGMMA_D8(16), KILN_WGMMA_D8(24)
        : "l"(a), "l"(b), "r"(scale_d), "n"(static_cast<int>(a_major)), "n"(static_cast<int>(b_major)));
  } else if constexpr (N == 128) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, accumulate, 1, 1, %67, %68;\n}\n"
        : KILN_WGMMA_D8(0), KILN_WGMMA_D8(8), KILN_WGMMA_D8(16), KILN_WGMMA_D8(24), KILN_WGMMA_D8(32),
          KILN_WGMMA_D8(40), KILN_WGMMA_D8(48), KILN_WGMMA_D8(56)
        : "l"(a), "l"(b), "r"(scale_d), "n"(static_cast<int>(a_major)), "n"(static_cast<int>(b_major)));
  }
#elif defined(__CUDA_ARCH__)
  (void)d, (void)a, (void)b, (void)accumulate;
  __trap();
#endif
}

// d (+)= A[64, 8] B[8, N], tf32 operands (floats) named by K-major descriptors, float accumulators (the
// same layout as wgmma_bf16's). N = 128 only, the width the ladder uses. Traps outside sm_90a, as above.
template <int N>
__device__ __forceinline__ void wgmma_tf32(float (&d)[N / 2], std::uint64_t a, std::uint64_t b,
                                           bool accumulate) {
  static_assert(N == 128, "the tile width wgmma_tf32 provides");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const int scale_d = accumulate ? 1 : 0;
  asm volatile(
      "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, accumulate, 1, 1;\n}\n"
      : KILN_WGMMA_D8(0), KILN_WGMMA_D8(8), KILN_WGMMA_D8(16), KILN_WGMMA_D8(24), KILN_WGMMA_D8(32),
        KILN_WGMMA_D8(40), KILN_WGMMA_D8(48), KILN_WGMMA_D8(56)
      : "l"(a), "l"(b), "r"(scale_d));
#elif defined(__CUDA_ARCH__)
  (void)d, (void)a, (void)b, (void)accumulate;
  __trap();
#endif
}

// d (+)= A[64, 8] B[8, N], A from this thread's four registers `a` (float bits; layout above), B tf32 named
// by a K-major descriptor, float accumulators. N = 128 only. Traps outside sm_90a, as above.
template <int N>
__device__ __forceinline__ void wgmma_tf32_register_a(float (&d)[N / 2], const std::uint32_t (&a)[4],
                                                      std::uint64_t b, bool accumulate) {
  static_assert(N == 128, "the tile width wgmma_tf32_register_a provides");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const int scale_d = accumulate ? 1 : 0;
  asm volatile(
      "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, accumulate, 1, 1;\n}\n"
      : KILN_WGMMA_D8(0), KILN_WGMMA_D8(8), KILN_WGMMA_D8(16), KILN_WGMMA_D8(24), KILN_WGMMA_D8(32),
        KILN_WGMMA_D8(40), KILN_WGMMA_D8(48), KILN_WGMMA_D8(56)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d));
#elif defined(__CUDA_ARCH__)
  (void)d, (void)a, (void)b, (void)accumulate;
  __trap();
#endif
}

#undef KILN_WGMMA_D8

#endif

}  // namespace kiln::kernels::ladder
