// How the GEMM-based convolutions walk the batch: in fixed chunks of images, each chunk one GEMM.
//
// One image's GEMM can be small (ResNet-20's last stage is 64 x 64 outputs per image, pointwise layers at
// 2x2 have 4 columns), so images are grouped into chunks of about `target_columns` GEMM columns: a chunk
// of `count` images is one matrix [rows, count * OH*OW], with image b in columns [b * OH*OW, (b+1) * OH*OW):
// where the images lie, their blocks of columns C * OH*OW apart (GemmGeometry::column_block, depth_block), or
// unfolded side by side by im2col.
// The chunk size depends only on the shape, never on the thread count, so the arithmetic (and, in the
// weight gradient, the order of the sums) is the same on any number of threads.
//
// The functions that are not templates are defined in batch_chunks.cpp, compiled for the baseline CPU:
// this header is also included by the avx512 / avx2 translation units, and an inline function compiled
// there could be the copy the linker keeps for everyone.
//
// Threads: with at least as many chunks as threads, each thread takes whole chunks and the GEMMs inside run
// single-threaded (nested parallel regions are off); with fewer chunks (batch 1), the chunks run one after
// another and each GEMM uses every thread. Either way each output is computed by the same operations.
// Each thread takes a contiguous share of the chunks, and a thread done with its own steals chunks from the
// back of another's (contiguous_shares.hpp): which thread runs a chunk changes no bit, a thread that loses
// its core for a while (other processes share this machine's cores) holds nobody up, and each thread's images
// stay one run of the batch. (Handed out as threads came free, schedule(dynamic), they were scattered through
// it: MobileNet's 32 -> 64 pointwise forward at 32x32 took 4.4 ms instead of 2.4; fixed shares without
// stealing, schedule(static), made a ResNet-20 step on a shared machine wait for the slowest thread.)
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/contiguous_shares.hpp"
#include "kernels/cpu_scratch.hpp"
#include "kernels/parallel.hpp"

namespace kiln::kernels::batch_chunks {

struct Chunking {
  std::int64_t images_per_chunk = 1;
  std::int64_t chunk_count = 1;
  std::int64_t first_image(std::int64_t chunk) const { return chunk * images_per_chunk; }
  std::int64_t images_in(std::int64_t chunk, std::int64_t batch) const {
    return std::min(images_per_chunk, batch - first_image(chunk));
  }
};

// The chunk sizes the GEMM-based convolutions (im2col + GEMM, pointwise) use. GEMM columns per chunk: wide
// enough that the GEMM streams its column operand efficiently; the weight gradient takes more (its GEMM's
// K is the batch dimension, and fewer chunks mean fewer partial sums). Scratch is 16 MiB per thread at most.
inline constexpr std::int64_t kForwardChunkColumns = 1024;
inline constexpr std::int64_t kWeightChunkColumns = 4096;
inline constexpr std::int64_t kMaxChunkFloats = std::int64_t{4} << 20;

// Chunks of about `target_columns` columns (at least one image), with floats_per_image x images_per_chunk
// <= max_chunk_floats (unless one image alone is more) so the scratch stays bounded.
Chunking chunk_batch(std::int64_t batch, std::int64_t columns_per_image, std::int64_t target_columns,
                     std::int64_t floats_per_image, std::int64_t max_chunk_floats);

// `chunking` re-cut into a multiple of `threads` chunks of at most as many images each, as even as the batch
// allows, so that no thread idles while another finishes a last chunk: 128 images in chunks of 12 are 11
// chunks, 6 for one thread and 5 for the other; 12 chunks of 11 give each thread 6. Only for kernels whose
// outputs do not depend on the chunking (each output summed within one chunk, in an order the chunk does
// not change), such as direct_channels_kernel.hpp's; never for a weight gradient's chunk sums.
Chunking balanced(Chunking chunking, std::int64_t batch, int threads);

// Runs body(chunk, scratch_pointer) for every chunk, each thread with its own `scratch_floats` of scratch.
template <typename Body>
void for_each_chunk(std::int64_t chunk_count, std::int64_t scratch_floats, Body body) {
  const int threads = compute_threads();
  if (threads > 1 && chunk_count >= threads) {
    ContiguousShares shares(chunk_count, threads);
#pragma omp parallel
    {
      const CpuScratch own = cpu_scratch(scratch_floats);
      const int thread = omp_get_thread_num();
      for (std::int64_t chunk; (chunk = shares.next(thread)) >= 0;) body(chunk, own.get());
    }
  } else {
    const CpuScratch own = cpu_scratch(scratch_floats);
    for (std::int64_t chunk = 0; chunk < chunk_count; ++chunk) body(chunk, own.get());
  }
}

// gradient = sum over chunks of chunk_gradient(chunk, scratch, out), where chunk_gradient overwrites
// out[gradient_size] with one chunk's sum. Each chunk's sum goes to its own buffer, then every gradient
// element adds its chunk sums in chunk order: ((g0 + g1) + g2) + ..., the same order for any thread
// count. A single chunk writes straight into `gradient` (and its GEMM gets every thread).
//
// One parallel region holds all of it (chunks, one barrier, the combining pass): on a machine shared with
// other processes every synchronization can cost a scheduler time slice, so there are as few as possible.
// Chunk buffers are capped at kMaxPartialFloats; beyond that the chunks go in rounds, combined in the same
// order.
constexpr std::int64_t kMaxPartialFloats = std::int64_t{8} << 20;  // 32 MiB

// The combining pass goes a block of the gradient at a time, adding each chunk's sums for the block in turn:
// the block stays in L1 while the chunks' runs stream past, and each add is a vector of independent
// elements. (Element by element through every chunk, 64 chunks of a 5x5 layer's weight gradient were 64
// strided streams, a quarter of its time on one thread.)
constexpr std::int64_t kCombineBlockFloats = 2048;

// out[0, n) (+)= the sums of chunks [first, end) of one block, chunk `first`'s at partials, each next
// chunk's `stride` floats on: out = ((p_0 + p_1) + p_2) + ... when first == 0, else out + p_first + ...,
// every element in chunk order whatever the block.
void add_chunk_sums(const float* partials, std::int64_t stride, std::int64_t first, std::int64_t end,
                    std::int64_t n, float* out);

template <typename ChunkGradient>
void sum_over_chunks(std::int64_t chunk_count, std::int64_t gradient_size, std::int64_t scratch_floats,
                     float* gradient, ChunkGradient chunk_gradient) {
  const int threads = compute_threads();
  if (chunk_count == 1) {
    const CpuScratch own = cpu_scratch(scratch_floats);
    chunk_gradient(0, own.get(), gradient);
    return;
  }
  const std::int64_t round =
      std::min(chunk_count,
               std::max<std::int64_t>(threads, kMaxPartialFloats / std::max<std::int64_t>(1, gradient_size)));
  const CpuScratch partials = cpu_scratch(round * gradient_size);
  const std::int64_t combine_blocks = (gradient_size + kCombineBlockFloats - 1) / kCombineBlockFloats;
  std::vector<ContiguousShares> rounds;  // each round's chunks, shared out as for_each_chunk's
  for (std::int64_t round_start = 0; round_start < chunk_count; round_start += round)
    rounds.emplace_back(std::min(round, chunk_count - round_start), threads);
#pragma omp parallel if (threads > 1)
  {
    const CpuScratch own = cpu_scratch(scratch_floats);
    const int thread = omp_get_thread_num();
    for (std::int64_t round_start = 0; round_start < chunk_count; round_start += round) {
      const std::int64_t round_end = std::min(chunk_count, round_start + round);
      for (std::int64_t i; (i = rounds[static_cast<std::size_t>(round_start / round)].next(thread)) >= 0;)
        chunk_gradient(round_start + i, own.get(), partials.get() + i * gradient_size);
#pragma omp barrier
        // (every chunk sum of this round is written)
#pragma omp for schedule(static)
      for (std::int64_t block = 0; block < combine_blocks; ++block) {
        const std::int64_t begin = block * kCombineBlockFloats;
        add_chunk_sums(partials.get() + begin, gradient_size, round_start, round_end,
                       std::min(kCombineBlockFloats, gradient_size - begin), gradient + begin);
      }
    }
  }
}

}  // namespace kiln::kernels::batch_chunks
