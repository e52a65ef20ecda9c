// How the CPU GEMMs (gemm_driver.hpp's float kernels, avx512_bf16.cpp's bfloat16 one) share C among the
// threads.
//
// C is cut into one block of whole NR-wide column slivers per thread (or of whole MR-row tiles, when C has
// more row tiles than column slivers: 576 x 64 backward-data, a Linear layer's 128 x 10), and each thread
// runs the five loops on its block with its own packed buffers. No barrier anywhere: the threads share
// nothing but read-only A and B. The price is that every thread packs all of A (column split), which costs
// M x K copies against M x K x N / threads multiply-adds, under 2% for N >= 64 per thread. The textbook
// alternative (threads share one packed B panel and split the jr loop, as BLIS does on many cores)
// synchronizes twice per A block; here the only synchronization is the join at the end. That matters on a
// 2-core machine shared with other processes: each synchronization point waits out a scheduler time slice
// (milliseconds) whenever the other thread is descheduled.
//
// K is never split: every C element is computed by the same micro-kernel steps in the same order for any
// thread count and any cut, so results are bitwise identical for 1 and 2 threads.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels {

// Calls block(row0, rows, col0, cols) for each thread's block of C, in a parallel region; or once, for all
// of C on the calling thread, where threads do not pay: products below `min_parallel_multiply_adds`, a
// single unit of work, one thread, or a call from inside another kernel's parallel region (nested regions
// are off, so it would get one thread anyway).
template <typename Block>
void cut_among_threads(const GemmGeometry& g, std::int64_t mr, std::int64_t nr,
                       std::int64_t min_parallel_multiply_adds, const Block& block) {
  const std::int64_t row_tiles = (g.m + mr - 1) / mr, col_slivers = (g.n + nr - 1) / nr;
  const bool split_columns = col_slivers >= row_tiles;
  const std::int64_t units = split_columns ? col_slivers : row_tiles;
  if (g.m * g.n * g.k < min_parallel_multiply_adds || units == 1 || omp_get_max_threads() == 1 ||
      omp_in_parallel()) {
    return block(std::int64_t{0}, g.m, std::int64_t{0}, g.n);
  }
#pragma omp parallel
  {
    const std::int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
    const std::int64_t first = units * thread / threads, last = units * (thread + 1) / threads;
    if (first < last) {
      if (split_columns) {
        block(std::int64_t{0}, g.m, first * nr, std::min(last * nr, g.n) - first * nr);
      } else {
        block(first * mr, std::min(last * mr, g.m) - first * mr, std::int64_t{0}, g.n);
      }
    }
  }
}

}  // namespace kiln::kernels
