// How the kernels' OpenMP threads wait at a barrier, for the kiln program.
//
// libgomp's threads spin at each barrier before they sleep, 300,000 rounds by default, which assumes every
// thread has a core to itself. On a machine shared with other work a spinning thread keeps its core from
// the very thread it waits for, and a training step holds thousands of barriers (every batch norm, pool and
// elementwise op is a parallel region): ResNet-20's fp32 step on two cores beside two busy loops took
// 1103 ms, against 117 alone. 100,000 rounds keeps the shared case near a fair share of the cores (258-268
// ms) and costs nothing alone (117-122 ms either way; the bf16 steps within 2%), where not spinning at all
// (OMP_WAIT_POLICY=passive) costs 11% alone and 10,000 rounds more than doubles the step.
//
// libgomp reads its environment when it is loaded, before main, so the setting cannot be made from inside:
// the program sets GOMP_SPINCOUNT and starts itself again, once, unless the user has set GOMP_SPINCOUNT or
// OMP_WAIT_POLICY (then theirs stands). Library users set it in their environment.
#pragma once

namespace kiln::cli {

// First thing in main: may replace the process with a new start of the same program and arguments.
void settle_openmp_waiting(char** argv);

}  // namespace kiln::cli
