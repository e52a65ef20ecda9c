// How many threads the CPU kernels use, set once per process.
//
// Kernels parallelize with OpenMP (`#pragma omp parallel for`), and every parallel kernel splits its work
// so that each output element is computed by exactly one thread in a fixed order: results are bitwise the
// same for any thread count, which keeps resumed training runs and the reference comparisons exact.
//
// The count is OpenMP's default (OMP_NUM_THREADS, else every core) until the program sets it, which the
// `kiln` program does from `--threads` before any kernel runs.
#pragma once

namespace kiln::kernels {

int compute_threads();
// The most threads a count may ask for: far past any core count, and far below what would make OpenMP's
// thread creation fail (100000 crashed it, with no message).
inline constexpr int kMaxComputeThreads = 1024;
// 1 <= n <= kMaxComputeThreads sets the count; n == 0 restores the default of every core the process may use.
void set_compute_threads(int n);

}  // namespace kiln::kernels
