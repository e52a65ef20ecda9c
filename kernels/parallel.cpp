#include "kernels/parallel.hpp"

#include <omp.h>

#include "core/error.hpp"

namespace kiln::kernels {

int compute_threads() { return omp_get_max_threads(); }

void set_compute_threads(int n) {
  KILN_CHECK(n >= 0 && n <= kMaxComputeThreads, "set_compute_threads: thread count must be 0 to ",
             kMaxComputeThreads, ", got ", n);
  omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
}

}  // namespace kiln::kernels
