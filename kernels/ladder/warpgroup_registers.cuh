// Moving registers between warpgroups (setmaxnreg, sm_90a). Included by .cu files only; the CPU emulator
// (tests/emulation) defines the same functions.
//
// A block's threads all start with the same register budget: the kernel's count, capped by
// __launch_bounds__(threads, 1) at 65,536 / threads, rounded down to 8. A warp-specialized kernel wastes
// most of it on its producer, a warpgroup that only issues copies (a few dozen registers), while its
// consumers want every register they can get for accumulators. setmaxnreg rebalances at run time: the
// producer warpgroup lowers its budget and returns registers to the SM's pool, the consumers raise theirs
// from it. With 3 warpgroups of 128 threads, 168 registers each at launch, the producer's 40 pays for
// the consumers' 232 (128 x 40 + 256 x 232 = 64,512 <= 65,536).
//
// Both are warpgroup-wide (every thread of the warpgroup executes the same one), the counts multiples of 8
// from 24 to 256. The compiler honours them only in a kernel with a register cap at entry, each role one
// branch of a single if/else; otherwise it warns (C7508) and ignores them.
#pragma once

namespace kiln::kernels::ladder {

template <int count>
inline constexpr bool kValidRegisterCount = count >= 24 && count <= 256 && count % 8 == 0;

#ifdef KILN_CUDA_EMULATION
// The emulator checks that the whole warpgroup takes part; registers are not modelled.
void warpgroup_set_registers_emulated(int count, const char* name);
template <int count>
void warpgroup_release_registers() {
  static_assert(kValidRegisterCount<count>, "setmaxnreg takes a multiple of 8 from 24 to 256");
  warpgroup_set_registers_emulated(count, "setmaxnreg.dec");
}
template <int count>
void warpgroup_claim_registers() {
  static_assert(kValidRegisterCount<count>, "setmaxnreg takes a multiple of 8 from 24 to 256");
  warpgroup_set_registers_emulated(count, "setmaxnreg.inc");
}
#else
// Lowers the calling warpgroup's register budget to `count` per thread, returning the rest to the pool.
template <int count>
__device__ __forceinline__ void warpgroup_release_registers() {
  static_assert(kValidRegisterCount<count>, "setmaxnreg takes a multiple of 8 from 24 to 256");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(count));
#endif
}

// Raises the calling warpgroup's register budget to `count` per thread, waiting until the pool has them.
template <int count>
__device__ __forceinline__ void warpgroup_claim_registers() {
  static_assert(kValidRegisterCount<count>, "setmaxnreg takes a multiple of 8 from 24 to 256");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(count));
#endif
}
#endif

}  // namespace kiln::kernels::ladder
