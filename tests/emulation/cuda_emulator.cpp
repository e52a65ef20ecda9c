// The CPU emulator behind kernels/ladder/launch.cuh, mma.cuh, wgmma.cuh, cp_async.cuh, mbarrier.cuh, tma.cuh
// and warpgroup_registers.cuh when they are built with KILN_CUDA_EMULATION: runs a grid's blocks one after
// another, each block's threads as fibers (cooperative, on the calling thread), with real barriers, warp- and
// warpgroup-level operations computed from the layouts mma.cuh and wgmma.cuh document, deferred cp.async
// copies, mbarriers whose tensor copies land when waited for, and poisoned, guarded dynamic shared memory.
// cuda_emulator.hpp says what each part does and why.
//
// Fibers rather than one std::thread per CUDA thread: a block of the ladders has 256 to 1024 threads that
// meet at a barrier every few hundred instructions, and a warp of 32 that meets at every mma. A switch
// between fibers is a dozen instructions (x86-64, below) where a switch between OS threads is a trip
// through the kernel's scheduler; and the fibers make a deadlock certain the moment no thread can run,
// with no timeout to wait out.
//
// Compiled only into the emulated backend (kiln_emulated_library, tests/emulation/CMakeLists.txt).

#include "tests/emulation/cuda_emulator.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mbarrier.cuh"
#include "kernels/ladder/mma.cuh"
#include "kernels/ladder/tma.cuh"
#include "kernels/ladder/warpgroup_registers.cuh"
#include "kernels/ladder/wgmma.cuh"
#include "tests/emulation/address_ranges.hpp"

#if defined(__x86_64__)
#define KILN_EMULATION_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace kiln::emulation {

thread_local uint3 thread_index{0, 0, 0};
thread_local uint3 block_index{0, 0, 0};
thread_local dim3 block_size;
thread_local dim3 grid_size;

}  // namespace kiln::emulation

// ---- Context switching ----------------------------------------------------------------------------------
#ifdef KILN_EMULATION_ASM_SWITCH
// kiln_emulation_switch(&save, next): pushes the callee-saved registers (System V x86-64: rbx, rbp,
// r12-r15) on the current stack, stores the stack pointer in *save, loads `next` as the stack pointer and
// pops the registers saved there; `ret` then resumes whoever saved that stack. A fresh fiber's stack is
// prepared to look as if it had been saved on entry to fiber_entry (make_context below).
asm(R"(
  .text
  .p2align 4
  .type kiln_emulation_switch,@function
kiln_emulation_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size kiln_emulation_switch,.-kiln_emulation_switch
)");
extern "C" void kiln_emulation_switch(void** save_stack_pointer, void* next_stack_pointer);
#endif

namespace kiln::emulation {
namespace {

struct Context {
#ifdef KILN_EMULATION_ASM_SWITCH
  void* stack_pointer = nullptr;
#else
  ucontext_t context;
#endif
};

void switch_context(Context& from, Context& to) {
#ifdef KILN_EMULATION_ASM_SWITCH
  kiln_emulation_switch(&from.stack_pointer, to.stack_pointer);
#else
  swapcontext(&from.context, &to.context);
#endif
}

// A context that starts entry() on the stack [stack, stack + bytes); entry never returns.
void make_context(Context& context, unsigned char* stack, std::size_t bytes, void (*entry)()) {
#ifdef KILN_EMULATION_ASM_SWITCH
  auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uintptr_t*>(top);
  *--slot = 0;                                        // entry's return address: none (keeps rsp % 16 == 8)
  *--slot = reinterpret_cast<std::uintptr_t>(entry);  // where kiln_emulation_switch's `ret` goes
  for (int i = 0; i < 6; ++i) *--slot = 0;            // rbp, rbx, r12-r15
  context.stack_pointer = slot;
#else
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = bytes;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
#endif
}

// ---- Memory with guard pages ----------------------------------------------------------------------------
std::size_t page_size() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}
std::size_t round_up(std::size_t value, std::size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// An anonymous mapping, released on destruction.
class Mapping {
 public:
  Mapping() = default;
  explicit Mapping(std::size_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    KILN_CHECK(p != MAP_FAILED, "cuda emulator: mmap of ", bytes, " bytes failed");
    base_ = static_cast<unsigned char*>(p);
  }
  ~Mapping() {
    if (base_ != nullptr) munmap(base_, bytes_);
  }
  Mapping(Mapping&& other) noexcept : base_(other.base_), bytes_(other.bytes_) { other.base_ = nullptr; }
  Mapping& operator=(Mapping&& other) noexcept {
    std::swap(base_, other.base_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  unsigned char* base() const { return base_; }
  std::size_t bytes() const { return bytes_; }
  void protect(std::size_t offset, std::size_t bytes) const {
    KILN_CHECK(mprotect(base_ + offset, bytes, PROT_NONE) == 0, "cuda emulator: mprotect failed");
  }

 private:
  unsigned char* base_ = nullptr;
  std::size_t bytes_ = 0;
};

// ---- What a launch keeps --------------------------------------------------------------------------------
enum class State { Runnable, AtBlockBarrier, AtWarpOperation, AtMbarrier, Finished };

struct Copy {
  void* destination;
  const void* source;
  int bytes;
  bool in_bounds;
};

// A warp-level operation: the last lane to arrive calls it with every lane's slot (lanes 0 .. lanes - 1).
using WarpOperation = void (*)(void* const* slots, int lanes);

struct Fiber {
  Context context;
  unsigned char* stack = nullptr;
  uint3 index{0, 0, 0};
  int rank = 0;  // linear index in the block: x + y X + z X Y; lane = rank % 32, warp = rank / 32
  State state = State::Runnable;
  const char* waiting_at = "";
  std::vector<Copy> copies;      // issued and not landed, in order
  std::vector<int> group_sizes;  // committed groups (oldest first): how many of `copies` each holds
  int open_copies = 0;           // issued since the last commit (the tail of `copies`)
  bool unfenced_copies = false;  // copies landed since this thread's last fence_proxy_async_shared
  std::size_t waiting_barrier = 0;  // AtMbarrier: the barrier's offset in the dynamic shared memory...
  int waiting_parity = 0;           // ...and the parity of the phase it waits to see complete
};

struct Warp {
  int lanes = 32;
  int arrived = 0;
  WarpOperation operation = nullptr;
  const char* name = "";
  void* slots[32] = {};
};

// A wgmma's operand type: bfloat16 (2 bytes, k16 per wgmma) or tf32 (a float's 4 bytes, of which the
// tensor cores read the top 19 bits; k8 per wgmma, so a slice is 32 bytes of a line either way).
enum class WgmmaType { Bf16, Tf32 };
constexpr int element_bytes(WgmmaType type) { return type == WgmmaType::Bf16 ? 2 : 4; }
constexpr int slice_k(WgmmaType type) { return type == WgmmaType::Bf16 ? 16 : 8; }

// One wgmma as issued: the operands' type and descriptors and every thread's accumulators (thread t of the
// warpgroup at d[t]).
struct WgmmaOperation {
  int n = 0;
  WgmmaType type = WgmmaType::Bf16;
  std::uint64_t a = 0, b = 0;
  bool accumulate = false;
  kernels::ladder::Major a_major = kernels::ladder::Major::K;
  kernels::ladder::Major b_major = kernels::ladder::Major::K;
  float* d[128] = {};
  // A from registers (wgmma_tf32_register_a): each thread's four, read when the wgmma executes; else null
  // and A is named by the descriptor `a`.
  const std::uint32_t* a_registers[128] = {};
  bool a_in_registers = false;
  std::vector<std::size_t> read_chunks;  // what it reads (16-byte chunks of the dynamic shared memory)
};

// A tensor copy (tma.cuh) issued and not landed: the box of `map` at `coordinates` for `destination`.
struct TensorCopy {
  unsigned char* destination;
  kernels::ladder::TensorMap map;
  int coordinates[kernels::ladder::kTmaMaxRank];
};

// An mbarrier (mbarrier.cuh), kept beside the shared memory word that names it.
struct Mbarrier {
  int arrivals = 0;                   // per phase, from mbarrier_init
  int pending = 0;                    // arrivals the current phase still waits for
  std::int64_t bytes = 0;             // transaction bytes the current phase still waits for
  unsigned completed = 0;             // phases completed: the current phase's parity is completed % 2
  bool fenced = false;                // fence_mbarrier_init since mbarrier_init...
  unsigned fenced_at_generation = 0;  // ...at this count of __syncthreads, which must then pass once
  std::vector<TensorCopy> copies;     // issued, landing when a thread waits here
};

// A warpgroup-level operation, as WarpOperation: the last of the 128 threads to arrive runs it.
struct Warpgroup;
using WarpgroupOperation = void (*)(void* const* slots, Warpgroup& warpgroup);

// Four consecutive warps: their rendezvous, and the wgmma they have issued and not yet waited for.
struct Warpgroup {
  int arrived = 0;
  WarpgroupOperation operation = nullptr;
  const char* name = "";
  void* slots[128] = {};
  std::vector<WgmmaOperation> open;                    // issued since the last commit
  std::vector<std::vector<WgmmaOperation>> committed;  // committed groups, oldest first
  bool fenced = false;                                 // a wgmma_fence since the start or the last wait
};

constexpr int kWarpgroupThreads = 128;
// Where the dynamic shared memory starts in the emulated shared address space (shared_address): 16-byte
// aligned as on the GPU, and deliberately not on 1024 bytes, so a kernel that does not align its swizzled
// tiles reads the wrong bytes here too.
constexpr std::uint32_t kSharedWindowOrigin = 0x190;

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr unsigned char kSharedPoison = 0xff;               // every float and bfloat16 made of it is a NaN
constexpr std::size_t kMaxDynamicSharedBytes = 227 * 1024;  // an H100's per-block opt-in limit
constexpr int kWatchdogSeconds = 120;

struct Launch {
  const char* name = "";
  dim3 grid, block;
  const std::function<void()>* body = nullptr;
  int threads = 0;
  std::vector<Fiber>* fibers = nullptr;
  std::vector<Warp> warps;
  std::vector<Warpgroup> warpgroups;  // empty unless the block is whole warpgroups
  // Per 16-byte chunk of the dynamic shared memory: how many issued, unretired wgmma read it. A cp.async
  // into such a chunk is an error (the GPU may land it before the wgmma reads).
  std::vector<std::uint16_t> wgmma_readers;
  // The block's mbarriers by offset in the dynamic shared memory (mbarrier.cuh).
  std::map<std::size_t, Mbarrier> mbarriers;
  Fiber* current = nullptr;
  Context scheduler;
  int barrier_arrived = 0;
  unsigned barrier_generation = 0;  // how many times __syncthreads has released the block
  std::exception_ptr error;
  unsigned char* shared = nullptr;  // the dynamic shared memory
  std::size_t shared_bytes = 0;
};

thread_local Launch* active = nullptr;

// Fiber stacks, kept between launches: kStackBytes each with a guard page below.
struct StackPool {
  Mapping mapping;
  std::vector<Fiber> fibers;
  void reserve(int count) {
    if (static_cast<int>(fibers.size()) >= count) return;
    const std::size_t each = kStackBytes + page_size();
    Mapping grown(each * static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) grown.protect(each * static_cast<std::size_t>(i), page_size());
    mapping = std::move(grown);
    fibers.assign(static_cast<std::size_t>(count), Fiber{});
    for (int i = 0; i < count; ++i)
      fibers[static_cast<std::size_t>(i)].stack =
          mapping.base() + each * static_cast<std::size_t>(i) + page_size();
  }
};
thread_local StackPool stack_pool;

// The registered device buffers. The emulated runtime registers each cudaMalloc, from whichever host thread
// allocates (a data loader's, say), hence the lock.
struct DeviceBuffers {
  std::mutex mutex;
  AddressRanges ranges;
};
DeviceBuffers& device_buffers() {
  static DeviceBuffers buffers;
  return buffers;
}
bool any_device_buffer() {
  DeviceBuffers& buffers = device_buffers();
  const std::lock_guard lock(buffers.mutex);
  return !buffers.ranges.empty();
}
bool inside_device_buffer(const void* pointer, std::size_t bytes) {
  DeviceBuffers& buffers = device_buffers();
  const std::lock_guard lock(buffers.mutex);
  return buffers.ranges.holds(pointer, bytes);
}
bool touches_device_buffer(const void* pointer, std::size_t bytes) {
  DeviceBuffers& buffers = device_buffers();
  const std::lock_guard lock(buffers.mutex);
  return buffers.ranges.touches(pointer, bytes);
}

std::string describe(const uint3& v) {
  std::ostringstream text;  // (GCC 12 at -O3 warns, wrongly, on the same built with operator+: -Wrestrict)
  text << "(" << v.x << ", " << v.y << ", " << v.z << ")";
  return text.str();
}

Launch& launch_here(const char* what) {
  if (active == nullptr || active->current == nullptr)
    fail("cuda emulator: ", what, " called outside a kernel launched through launch()");
  return *active;
}

// Throws a kiln::Error prefixed with the kernel, block and thread running now.
template <typename... Parts>
[[noreturn]] void fail_here(const Parts&... parts) {
  const Launch& launch = *active;
  fail(launch.name, ": block ", describe(block_index), " thread ", describe(thread_index), ": ", parts...);
}

void yield_to_scheduler() {
  Launch& launch = *active;
  switch_context(launch.current->context, launch.scheduler);
}

// ---- Fault reporting and the watchdog --------------------------------------------------------------------
// What the fault handler prints; plain globals (a signal handler may read them).
const char* volatile fault_kernel = nullptr;
volatile unsigned fault_block[3], fault_thread[3];
struct sigaction previous_segv, previous_bus;
stack_t alternate_stack;
std::vector<unsigned char> alternate_stack_memory;

void write_text(const char* text) {
  const ssize_t ignored = write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}
void write_number(std::uintptr_t value, int base) {
  char digits[32];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[value % static_cast<unsigned>(base)];
    value /= static_cast<unsigned>(base);
  } while (value != 0);
  char text[34];
  int t = 0;
  if (base == 16) {
    text[t++] = '0';
    text[t++] = 'x';
  }
  while (n > 0) text[t++] = digits[--n];
  text[t] = '\0';
  write_text(text);
}

void on_fault(int signal, siginfo_t* info, void*) {
  write_text("\ncuda emulator: memory fault at ");
  write_number(reinterpret_cast<std::uintptr_t>(info->si_addr), 16);
  write_text(" in ");
  write_text(fault_kernel != nullptr ? fault_kernel : "?");
  write_text(", block (");
  for (int i = 0; i < 3; ++i) {
    write_number(fault_block[i], 10);
    write_text(i < 2 ? ", " : "), thread (");
  }
  for (int i = 0; i < 3; ++i) {
    write_number(fault_thread[i], 10);
    write_text(i < 2 ? ", " : ")");
  }
  write_text(
      ": a read or write past a guarded operand, past the dynamic shared memory, or off a thread's stack\n");
  // Hand the fault to whoever handled it before (doctest reports the crashed test): the instruction runs
  // again and faults again under the previous handler.
  sigaction(SIGSEGV, &previous_segv, nullptr);
  sigaction(SIGBUS, &previous_bus, nullptr);
  (void)signal;
}

void install_fault_handler() {
  if (alternate_stack_memory.empty()) alternate_stack_memory.resize(64 * 1024);
  alternate_stack.ss_sp = alternate_stack_memory.data();
  alternate_stack.ss_size = alternate_stack_memory.size();
  alternate_stack.ss_flags = 0;
  sigaltstack(&alternate_stack, nullptr);
  struct sigaction action {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv);
  sigaction(SIGBUS, &action, &previous_bus);
}
void remove_fault_handler() {
  sigaction(SIGSEGV, &previous_segv, nullptr);
  sigaction(SIGBUS, &previous_bus, nullptr);
}

// A launch that runs longer than kWatchdogSeconds (a thread spinning in a loop that never meets a barrier)
// aborts the process with its name: a deadlock at a barrier is found at once, without it.
std::atomic<std::int64_t> launch_started_ms{0};
std::atomic<const char*> launch_name{nullptr};
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
void start_watchdog() {
  static std::once_flag started;
  std::call_once(started, [] {
    std::thread([] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        const std::int64_t started_ms = launch_started_ms.load();
        if (started_ms != 0 && now_ms() - started_ms > kWatchdogSeconds * 1000) {
          std::fprintf(stderr,
                       "\ncuda emulator: %s has run for over %d s: a thread stuck in a loop? aborting\n",
                       launch_name.load(), kWatchdogSeconds);
          std::abort();
        }
      }
    }).detach();
  });
}

// ---- Running a block --------------------------------------------------------------------------------------
[[noreturn]] void fiber_entry() {
  Launch& launch = *active;
  try {
    (*launch.body)();
  } catch (...) {
    if (!launch.error) launch.error = std::current_exception();
  }
  launch.current->state = State::Finished;
  switch_context(launch.current->context, launch.scheduler);
  std::abort();  // a finished fiber is never resumed
}

// Where the threads of a stuck block wait, for the deadlock message.
std::string describe_deadlock(const Launch& launch) {
  int at_barrier = 0, finished = 0;
  std::map<std::pair<std::size_t, int>, int> at_mbarrier;  // (barrier, parity) -> threads waiting
  for (int i = 0; i < launch.threads; ++i) {
    const Fiber& fiber = (*launch.fibers)[static_cast<std::size_t>(i)];
    if (fiber.state == State::AtBlockBarrier) ++at_barrier;
    if (fiber.state == State::Finished) ++finished;
    if (fiber.state == State::AtMbarrier) ++at_mbarrier[{fiber.waiting_barrier, fiber.waiting_parity}];
  }
  std::ostringstream text;
  text << "deadlock in " << launch.name << ", block " << describe(block_index) << ": " << at_barrier << " of "
       << launch.threads << " threads stuck at __syncthreads, " << finished
       << " returned (a barrier that some threads never reach: undefined on the GPU)";
  int listed = 0;
  for (std::size_t w = 0; w < launch.warps.size() && listed < 8; ++w) {
    const Warp& warp = launch.warps[w];
    if (warp.arrived == 0) continue;
    text << "; warp " << w << ": " << warp.arrived << " of " << warp.lanes << " lanes wait at " << warp.name;
    ++listed;
  }
  for (std::size_t g = 0; g < launch.warpgroups.size(); ++g) {
    const Warpgroup& warpgroup = launch.warpgroups[g];
    if (warpgroup.arrived == 0) continue;
    text << "; warpgroup " << g << ": " << warpgroup.arrived << " of " << kWarpgroupThreads
         << " threads wait at " << warpgroup.name;
  }
  for (const auto& [wait, threads] : at_mbarrier) {
    const Mbarrier& barrier = launch.mbarriers.at(wait.first);
    text << "; " << threads << " threads wait on the mbarrier at shared offset " << wait.first
         << " for its phase of parity " << wait.second << ", which still waits for " << barrier.pending
         << " arrivals and " << barrier.bytes << " transaction bytes";
  }
  return text.str();
}

void run_block(Launch& launch, const uint3& block) {
  block_index = block;
  for (int i = 0; i < launch.threads; ++i) {
    Fiber& fiber = (*launch.fibers)[static_cast<std::size_t>(i)];
    const unsigned x = static_cast<unsigned>(i) % launch.block.x;
    const unsigned y = static_cast<unsigned>(i) / launch.block.x % launch.block.y;
    const unsigned z = static_cast<unsigned>(i) / (launch.block.x * launch.block.y);
    fiber.index = {x, y, z};
    fiber.rank = i;
    fiber.state = State::Runnable;
    fiber.waiting_at = "";
    fiber.copies.clear();
    fiber.group_sizes.clear();
    fiber.open_copies = 0;
    fiber.unfenced_copies = false;
    make_context(fiber.context, fiber.stack, kStackBytes, fiber_entry);
  }
  for (Warp& warp : launch.warps) {
    warp.arrived = 0;
    warp.operation = nullptr;
  }
  for (Warpgroup& warpgroup : launch.warpgroups) warpgroup = Warpgroup{};
  std::fill(launch.wgmma_readers.begin(), launch.wgmma_readers.end(), std::uint16_t{0});
  launch.barrier_arrived = 0;
  launch.barrier_generation = 0;
  launch.mbarriers.clear();
  if (launch.shared_bytes > 0) std::memset(launch.shared, kSharedPoison, launch.shared_bytes);
  fault_block[0] = block.x;
  fault_block[1] = block.y;
  fault_block[2] = block.z;

  // Odd blocks run their threads last to first: a barrier missing between a write to shared memory and
  // another thread's read of it shows whichever thread runs first.
  const bool reverse = (block.x + block.y + block.z) % 2 == 1;
  for (;;) {
    bool ran = false, all_finished = true;
    for (int n = 0; n < launch.threads; ++n) {
      const int i = reverse ? launch.threads - 1 - n : n;
      Fiber& fiber = (*launch.fibers)[static_cast<std::size_t>(i)];
      if (fiber.state != State::Finished) all_finished = false;
      if (fiber.state != State::Runnable) continue;
      launch.current = &fiber;
      thread_index = fiber.index;
      fault_thread[0] = fiber.index.x;
      fault_thread[1] = fiber.index.y;
      fault_thread[2] = fiber.index.z;
      switch_context(launch.scheduler, fiber.context);
      launch.current = nullptr;
      ran = true;
      if (launch.error) std::rethrow_exception(launch.error);
    }
    if (all_finished) {
      for (std::size_t g = 0; g < launch.warpgroups.size(); ++g) {
        const Warpgroup& warpgroup = launch.warpgroups[g];
        if (!warpgroup.open.empty() || !warpgroup.committed.empty())
          fail(launch.name, ": block ", describe(block), ", warpgroup ", g,
               ": its threads returned with wgmma still in flight (no wgmma_wait covers them: the "
               "accumulators were never complete)");
      }
      for (const auto& [offset, barrier] : launch.mbarriers)
        if (!barrier.copies.empty())
          fail(launch.name, ": block ", describe(block), ": its threads returned with ",
               barrier.copies.size(), " tensor copies in flight on the mbarrier at shared offset ", offset,
               " (nobody waited for them: on the GPU they would land in a block that has ended)");
      return;
    }
    if (!ran) fail(describe_deadlock(launch));
  }
}

// ---- Warp-level operations --------------------------------------------------------------------------------
// The calling lane publishes `slot` and waits for its warp; the last lane to arrive runs `operation` on every
// lane's slot, and the warp goes on.
void warp_collective(const char* name, WarpOperation operation, void* slot, bool needs_full_warp) {
  Launch& launch = launch_here(name);
  Fiber& fiber = *launch.current;
  Warp& warp = launch.warps[static_cast<std::size_t>(fiber.rank / 32)];
  if (needs_full_warp && warp.lanes != 32)
    fail_here(name, " in a warp of ", warp.lanes, " threads: the block's size is not a multiple of 32");
  if (warp.arrived == 0) {
    warp.operation = operation;
    warp.name = name;
  } else if (warp.operation != operation) {
    fail_here("the lanes of warp ", fiber.rank / 32, " diverged: lane ", fiber.rank % 32, " is at ", name,
              " while others wait at ", warp.name);
  }
  warp.slots[fiber.rank % 32] = slot;
  if (++warp.arrived < warp.lanes) {
    fiber.state = State::AtWarpOperation;
    fiber.waiting_at = name;
    yield_to_scheduler();
    return;  // the last lane has computed this lane's result
  }
  warp.arrived = 0;
  operation(warp.slots, warp.lanes);
  const int first = fiber.rank / 32 * 32;
  for (int lane = 0; lane < warp.lanes; ++lane) {
    Fiber& other = (*launch.fibers)[static_cast<std::size_t>(first + lane)];
    if (other.state == State::AtWarpOperation) other.state = State::Runnable;
  }
}

void check_full_mask(unsigned mask, const char* name) {
  const Launch& launch = launch_here(name);
  const int lanes = launch.warps[static_cast<std::size_t>(launch.current->rank / 32)].lanes;
  const unsigned full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  if ((mask & full) != full) fail_here(name, " with mask ", mask, ": only whole-warp masks are emulated");
}

struct ShuffleSlot {
  const void* value;
  void* result;
  std::size_t bytes;
  ShuffleMode mode;
  int lane_arg, width;
};

void shuffle_operation(void* const* slots, int lanes) {
  for (int lane = 0; lane < lanes; ++lane) {
    const auto& slot = *static_cast<const ShuffleSlot*>(slots[lane]);
    const int width = slot.width;
    if (width < 1 || width > 32 || (width & (width - 1)) != 0)
      fail_here("shuffle width ", width, ": must be a power of 2 up to 32");
    const int segment = lane / width * width, in_segment = lane % width;
    int source = lane;
    switch (slot.mode) {
      case ShuffleMode::Index:
        source = segment + (slot.lane_arg % width + width) % width;
        break;
      case ShuffleMode::Up:
        source = in_segment - slot.lane_arg >= 0 ? lane - slot.lane_arg : lane;
        break;
      case ShuffleMode::Down:
        source = in_segment + slot.lane_arg < width ? lane + slot.lane_arg : lane;
        break;
      case ShuffleMode::Xor: {
        const int target = lane ^ slot.lane_arg;
        source = target / width * width == segment ? target : lane;
        break;
      }
    }
    if (source >= lanes) source = lane;
    const auto& from = *static_cast<const ShuffleSlot*>(slots[source]);
    if (from.bytes != slot.bytes || from.mode != slot.mode)
      fail_here("the lanes of a warp shuffle disagree on its type");
    std::memcpy(slot.result, from.value, slot.bytes);
  }
}

// mma: every lane's fragment pointers; the last lane assembles the whole matrices.
struct MmaSlot {
  float* c;
  const std::uint32_t* a;
  const std::uint32_t* b;
};

float float_from_bits(std::uint32_t bits) { return std::bit_cast<float>(bits); }
// The tensor core reads a TF32 operand as the register's top 19 bits (sign, exponent, 10 mantissa bits).
float tf32_operand(std::uint32_t bits) { return float_from_bits(bits & 0xffffe000u); }
float bf16_from_bits(std::uint32_t half) { return float_from_bits((half & 0xffffu) << 16); }

// D[16, 8] = A[16, K] B[K, 8] + C, then every lane's accumulators from the layout of mma.cuh:
//   c[0] = (group, 2 thread), c[1] = (group, 2 thread + 1), c[2] = (group + 8, 2 thread), c[3] = (group + 8,
//   2 thread + 1). Products are exact in float (11 x 11 and 8 x 8 significant bits); the sum runs in float.
template <int K>
void multiply_accumulate(void* const* slots, const float (&a)[16][K], const float (&b)[K][8]) {
  for (int lane = 0; lane < 32; ++lane) {
    float* c = static_cast<const MmaSlot*>(slots[lane])->c;
    const int group = lane / 4, thread = lane % 4;
    for (int r = 0; r < 4; ++r) {
      const int row = group + (r >= 2 ? 8 : 0), col = 2 * thread + r % 2;
      float sum = c[r];
      for (int k = 0; k < K; ++k) sum += a[row][k] * b[k][col];
      c[r] = sum;
    }
  }
}

void mma_tf32_operation(void* const* slots, int) {
  float a[16][8], b[8][8];
  for (int lane = 0; lane < 32; ++lane) {
    const auto& slot = *static_cast<const MmaSlot*>(slots[lane]);
    const int group = lane / 4, thread = lane % 4;
    // mma.cuh, tf32: a[0] = (group, thread), a[1] = (group + 8, thread), a[2] = (group, thread + 4),
    // a[3] = (group + 8, thread + 4); b[0] = (row thread, col group), b[1] = (row thread + 4, col group).
    a[group][thread] = tf32_operand(slot.a[0]);
    a[group + 8][thread] = tf32_operand(slot.a[1]);
    a[group][thread + 4] = tf32_operand(slot.a[2]);
    a[group + 8][thread + 4] = tf32_operand(slot.a[3]);
    b[thread][group] = tf32_operand(slot.b[0]);
    b[thread + 4][group] = tf32_operand(slot.b[1]);
  }
  multiply_accumulate<8>(slots, a, b);
}

void mma_bf16_operation(void* const* slots, int) {
  float a[16][16], b[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const auto& slot = *static_cast<const MmaSlot*>(slots[lane]);
    const int group = lane / 4, thread = lane % 4;
    // mma.cuh, bf16 (the lower column or row in the low 16 bits): a[0] = (group, 2 thread + {0, 1}),
    // a[1] = (group + 8, 2 thread + {0, 1}), a[2] = (group, 2 thread + 8 + {0, 1}), a[3] = (group + 8,
    // 2 thread + 8 + {0, 1}); b[0] = (rows 2 thread + {0, 1}, col group), b[1] = (rows 2 thread + 8 + {0,
    // 1}).
    for (int half = 0; half < 2; ++half) {
      const int shift = 16 * half;
      a[group][2 * thread + half] = bf16_from_bits(slot.a[0] >> shift);
      a[group + 8][2 * thread + half] = bf16_from_bits(slot.a[1] >> shift);
      a[group][2 * thread + 8 + half] = bf16_from_bits(slot.a[2] >> shift);
      a[group + 8][2 * thread + 8 + half] = bf16_from_bits(slot.a[3] >> shift);
      b[2 * thread + half][group] = bf16_from_bits(slot.b[0] >> shift);
      b[2 * thread + 8 + half][group] = bf16_from_bits(slot.b[1] >> shift);
    }
  }
  multiply_accumulate<16>(slots, a, b);
}

// ldmatrix: lanes 8i .. 8i + 7 name the 16-byte rows of matrix i; lane l receives in r[i] matrix i's
// (row l / 4, cols 2 (l % 4) + {0, 1}), or transposed (rows 2 (l % 4) + {0, 1}, col l / 4); the lower
// column (row) in the low 16 bits.
struct LdmatrixSlot {
  std::uint32_t* r;
  const void* row;
};

template <bool transposed>
void ldmatrix_operation(void* const* slots, int) {
  std::uint16_t m[4][8][8];  // m[matrix][row][col]
  for (int lane = 0; lane < 32; ++lane) {
    const void* row = static_cast<const LdmatrixSlot*>(slots[lane])->row;
    if (reinterpret_cast<std::uintptr_t>(row) % 16 != 0)
      fail_here("ldmatrix: lane ", lane, " names a row that does not start on 16 bytes");
    if (touches_device_buffer(row, 16)) fail_here("ldmatrix: lane ", lane, " names a row in global memory");
    std::memcpy(m[lane / 8][lane % 8], row, 16);
  }
  for (int lane = 0; lane < 32; ++lane) {
    std::uint32_t* r = static_cast<const LdmatrixSlot*>(slots[lane])->r;
    const int quad = lane / 4, pair = 2 * (lane % 4);
    for (int i = 0; i < 4; ++i) {
      const std::uint16_t low = transposed ? m[i][pair][quad] : m[i][quad][pair];
      const std::uint16_t high = transposed ? m[i][pair + 1][quad] : m[i][quad][pair + 1];
      r[i] = static_cast<std::uint32_t>(low) | static_cast<std::uint32_t>(high) << 16;
    }
  }
}

void sync_warp_operation(void* const*, int) {}

// ---- Warpgroup-level operations (wgmma) -----------------------------------------------------------------
// As warp_collective, for the 128 threads of the calling thread's warpgroup.
void warpgroup_collective(const char* name, WarpgroupOperation operation, void* slot) {
  Launch& launch = launch_here(name);
  Fiber& fiber = *launch.current;
  if (launch.warpgroups.empty())
    fail_here(name, " in a block of ", launch.threads,
              " threads: a warpgroup operation needs whole warpgroups (", kWarpgroupThreads, " threads)");
  Warpgroup& warpgroup = launch.warpgroups[static_cast<std::size_t>(fiber.rank / kWarpgroupThreads)];
  if (warpgroup.arrived == 0) {
    warpgroup.operation = operation;
    warpgroup.name = name;
  } else if (warpgroup.operation != operation) {
    fail_here("the threads of warpgroup ", fiber.rank / kWarpgroupThreads, " diverged: thread ",
              fiber.rank % kWarpgroupThreads, " is at ", name, " while others wait at ", warpgroup.name);
  }
  warpgroup.slots[fiber.rank % kWarpgroupThreads] = slot;
  if (++warpgroup.arrived < kWarpgroupThreads) {
    fiber.state = State::AtWarpOperation;
    fiber.waiting_at = name;
    yield_to_scheduler();
    return;  // the last thread has done this thread's part
  }
  warpgroup.arrived = 0;
  operation(warpgroup.slots, warpgroup);
  const int first = fiber.rank / kWarpgroupThreads * kWarpgroupThreads;
  for (int t = 0; t < kWarpgroupThreads; ++t) {
    Fiber& other = (*launch.fibers)[static_cast<std::size_t>(first + t)];
    if (other.state == State::AtWarpOperation) other.state = State::Runnable;
  }
}

// The element at (row, k) of the swizzled tile a descriptor names (wgmma.cuh), row being m or n, E bytes
// each (2 for bfloat16, 4 for tf32): the address is formed as the hardware forms it for the operand's
// orientation, then bits 4.. are XORed with bits 7.. (three bits for the 128-byte swizzle, two for 64, one
// for 32), in the emulated shared address space. With L the line's bytes (128, 64 or 32; the MN-major form,
// bfloat16 only, only with 128):
//   K-major:  start + (row / 8) stride + (row % 8) L + E k
//   MN-major: start + (row / 64) leading + (k / 8) stride + (k % 8) 128 + 2 (row % 64)
std::string hexadecimal(std::uint64_t value) {
  std::ostringstream text;
  text << "0x" << std::hex << value;
  return text.str();
}

std::size_t wgmma_operand_offset(std::uint64_t descriptor, kernels::ladder::Major major, int row, int k,
                                 WgmmaType type) {
  const Launch& launch = *active;
  const std::uint64_t start = (descriptor & 0x3fff) << 4;
  const std::uint64_t leading = (descriptor >> 16 & 0x3fff) << 4;
  const std::uint64_t stride = (descriptor >> 32 & 0x3fff) << 4;
  const std::uint64_t base_offset = descriptor >> 49 & 7;
  const std::uint64_t swizzle = descriptor >> 62;
  const bool k_major = major == kernels::ladder::Major::K;
  if (!k_major && type != WgmmaType::Bf16)
    fail_here("wgmma: a tf32 operand must be K-major (the instruction transposes 16-bit types only)");
  if (swizzle == 0 || base_offset != 0 || (!k_major && swizzle != 1))
    fail_here("wgmma: descriptor ", hexadecimal(descriptor),
              ": only the swizzled layouts of wgmma.cuh are emulated (128, 64 or 32 bytes K-major, 128 bytes "
              "MN-major, base offset 0)");
  const std::uint64_t line_bytes = 256 >> swizzle;  // 1: 128, 2: 64, 3: 32
  const auto r = static_cast<std::uint64_t>(row), kk = static_cast<std::uint64_t>(k);
  const auto bytes = static_cast<std::uint64_t>(element_bytes(type));
  const std::uint64_t logical =
      k_major ? start + r / 8 * stride + r % 8 * line_bytes + bytes * kk
              : start + r / 64 * leading + kk / 8 * stride + kk % 8 * 128 + 2 * (r % 64);
  const std::uint64_t physical = logical ^ ((logical >> 7 & (line_bytes / 16 - 1)) << 4);
  if (physical < kSharedWindowOrigin || physical + bytes > kSharedWindowOrigin + launch.shared_bytes)
    fail_here("wgmma: descriptor ", hexadecimal(descriptor), " reaches shared address ",
              hexadecimal(physical), ", outside the dynamic shared memory");
  return static_cast<std::size_t>(physical - kSharedWindowOrigin);
}

// The operand as the tensor cores multiply it: a bfloat16 exactly, a tf32 truncated to its top 19 bits.
float wgmma_operand(std::uint64_t descriptor, kernels::ladder::Major major, int row, int k, WgmmaType type) {
  const std::size_t offset = wgmma_operand_offset(descriptor, major, row, k, type);
  if (type == WgmmaType::Tf32) {
    std::uint32_t bits;
    std::memcpy(&bits, active->shared + offset, sizeof bits);
    return tf32_operand(bits);
  }
  std::uint16_t bits;
  std::memcpy(&bits, active->shared + offset, sizeof bits);
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

// The 16-byte chunks of dynamic shared memory (offset / 16) that `op` reads, each once.
std::vector<std::size_t> wgmma_read_chunks(const WgmmaOperation& op) {
  std::vector<std::size_t> chunks;
  for (int k = 0; k < slice_k(op.type) && !op.a_in_registers; ++k) {
    for (int m = 0; m < 64; ++m) chunks.push_back(wgmma_operand_offset(op.a, op.a_major, m, k, op.type) / 16);
  }
  for (int k = 0; k < slice_k(op.type); ++k) {
    for (int n = 0; n < op.n; ++n)
      chunks.push_back(wgmma_operand_offset(op.b, op.b_major, n, k, op.type) / 16);
  }
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  return chunks;
}

// D[64, n] (+)= A[64, K] B[K, n] (K = 16 for bfloat16, 8 for tf32), then each thread's accumulators from
// wgmma.cuh's layout: d[i] = D(16 warp + group + 8 ((i / 2) % 2), 8 (i / 4) + 2 quad + i % 2). Products
// exact (of the operands as multiplied); sums in float. A register-A wgmma's A is gathered from the threads'
// registers as they are now, by wgmma.cuh's layout: a[i] = A(16 warp + group + 8 (i % 2), quad + 4 (i / 2)).
void execute_wgmma(const WgmmaOperation& op) {
  const int depth = slice_k(op.type);
  float a[64][16];
  std::vector<float> b(static_cast<std::size_t>(op.n) * 16);
  if (op.a_in_registers) {
    for (int t = 0; t < kWarpgroupThreads; ++t) {
      const int warp = t / 32, group = t % 32 / 4, quad = t % 4;
      for (int i = 0; i < 4; ++i)
        a[16 * warp + group + 8 * (i % 2)][quad + 4 * (i / 2)] = tf32_operand(op.a_registers[t][i]);
    }
  } else {
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < depth; ++k) a[m][k] = wgmma_operand(op.a, op.a_major, m, k, op.type);
  }
  for (int n = 0; n < op.n; ++n)
    for (int k = 0; k < depth; ++k)
      b[static_cast<std::size_t>(n * 16 + k)] = wgmma_operand(op.b, op.b_major, n, k, op.type);
  for (int t = 0; t < kWarpgroupThreads; ++t) {
    const int warp = t / 32, group = t % 32 / 4, quad = t % 4;
    for (int i = 0; i < op.n / 2; ++i) {
      const int row = 16 * warp + group + 8 * (i / 2 % 2), col = 8 * (i / 4) + 2 * quad + i % 2;
      float sum = op.accumulate ? op.d[t][i] : 0.0f;
      for (int k = 0; k < depth; ++k) sum += a[row][k] * b[static_cast<std::size_t>(col * 16 + k)];
      op.d[t][i] = sum;
    }
  }
}

struct WgmmaSlot {
  int n;
  WgmmaType type;
  float* d;
  std::uint64_t a, b;
  bool accumulate;
  kernels::ladder::Major a_major, b_major;
  const std::uint32_t* a_registers = nullptr;  // A from registers (tf32 only); then `a` is unused
};

void wgmma_fence_operation(void* const*, Warpgroup& warpgroup) { warpgroup.fenced = true; }

void wgmma_issue_operation(void* const* slots, Warpgroup& warpgroup) {
  const auto& first = *static_cast<const WgmmaSlot*>(slots[0]);
  if (!warpgroup.fenced)
    fail_here("wgmma issued without a wgmma_fence since the kernel's start or the last wgmma_wait");
  const Launch& launch = *active;
  for (int i = 0; i < launch.threads; ++i)
    if ((*launch.fibers)[static_cast<std::size_t>(i)].unfenced_copies)
      fail_here(
          "wgmma issued while thread ", i,
          "'s landed cp.async copies await fence_proxy_async_shared: the tensor cores could read shared "
          "memory older than them");
  WgmmaOperation op;
  op.n = first.n;
  op.type = first.type;
  op.a = first.a;
  op.b = first.b;
  op.accumulate = first.accumulate;
  op.a_major = first.a_major;
  op.b_major = first.b_major;
  op.a_in_registers = first.a_registers != nullptr;
  for (int t = 0; t < kWarpgroupThreads; ++t) {
    const auto& slot = *static_cast<const WgmmaSlot*>(slots[t]);
    if (slot.n != op.n || slot.type != op.type || slot.a != op.a || slot.b != op.b ||
        slot.accumulate != op.accumulate || slot.a_major != op.a_major || slot.b_major != op.b_major ||
        (slot.a_registers != nullptr) != op.a_in_registers)
      fail_here("the threads of a warpgroup issued different wgmma (thread ", t, " disagrees with thread 0)");
    op.d[t] = slot.d;
    op.a_registers[t] = slot.a_registers;
  }
  op.read_chunks = wgmma_read_chunks(op);
  for (std::size_t chunk : op.read_chunks) ++active->wgmma_readers[chunk];
  warpgroup.open.push_back(std::move(op));
}

void wgmma_commit_operation(void* const*, Warpgroup& warpgroup) {
  warpgroup.committed.push_back(std::move(warpgroup.open));
  warpgroup.open.clear();
}

// Retires every committed group but the newest `pending`, oldest first, computing its wgmma now.
void wgmma_wait_operation(void* const* slots, Warpgroup& warpgroup) {
  const int pending = *static_cast<const int*>(slots[0]);
  for (int t = 1; t < kWarpgroupThreads; ++t)
    if (*static_cast<const int*>(slots[t]) != pending)
      fail_here("the threads of a warpgroup wait for different wgmma group counts");
  const int retire = static_cast<int>(warpgroup.committed.size()) - pending;
  for (int g = 0; g < retire; ++g) {
    for (const WgmmaOperation& op : warpgroup.committed[static_cast<std::size_t>(g)]) {
      execute_wgmma(op);
      for (std::size_t chunk : op.read_chunks) --active->wgmma_readers[chunk];
    }
  }
  if (retire > 0)
    warpgroup.committed.erase(warpgroup.committed.begin(), warpgroup.committed.begin() + retire);
  warpgroup.fenced = false;  // the threads may now touch the accumulators: the next batch needs a fence
}

// ---- cp.async -------------------------------------------------------------------------------------------
void queue_copy(void* destination, const void* source, int bytes, bool in_bounds) {
  Launch& launch = launch_here("cp.async");
  const auto alignment = static_cast<std::uintptr_t>(bytes);
  if (reinterpret_cast<std::uintptr_t>(destination) % alignment != 0)
    fail_here("cp.async of ", bytes, " bytes to shared memory that does not start on ", bytes, " bytes");
  if (touches_device_buffer(destination, static_cast<std::size_t>(bytes)))
    fail_here("cp.async destination in a device (global) buffer, not in shared memory");
  if (launch.shared_bytes > 0) {
    const auto* d = static_cast<const unsigned char*>(destination);
    const bool in_dynamic = d >= launch.shared && d < launch.shared + launch.shared_bytes;
    if (in_dynamic && d + bytes > launch.shared + launch.shared_bytes)
      fail_here("cp.async destination runs past the end of the dynamic shared memory");
    if (in_dynamic && launch.wgmma_readers[static_cast<std::size_t>(d - launch.shared) / 16] > 0)
      fail_here(
          "cp.async into shared memory that an issued wgmma reads and no wgmma_wait has retired: the "
          "copy may land before the tensor cores read");
  }
  if (in_bounds) {
    if (reinterpret_cast<std::uintptr_t>(source) % alignment != 0)
      fail_here("cp.async of ", bytes, " bytes from global memory that does not start on ", bytes, " bytes");
    if (any_device_buffer() && !inside_device_buffer(source, static_cast<std::size_t>(bytes)))
      fail_here("cp.async reads ", bytes, " bytes at ", source, ", outside every operand of the launch");
  }
  Fiber& fiber = *launch.current;
  fiber.copies.push_back({destination, source, bytes, in_bounds});
  ++fiber.open_copies;
}

// ---- mbarrier and the tensor memory accelerator (mbarrier.cuh, tma.cuh) -----------------------------------
// The offset of the barrier word at `barrier` in the dynamic shared memory, checked.
std::size_t mbarrier_offset(const void* barrier, const char* what) {
  const Launch& launch = launch_here(what);
  const auto* p = static_cast<const unsigned char*>(barrier);
  if (p < launch.shared || p + sizeof(std::uint64_t) > launch.shared + launch.shared_bytes)
    fail_here(what, ": the barrier is not in the dynamic shared memory (where the emulator keeps mbarriers)");
  if (reinterpret_cast<std::uintptr_t>(p) % sizeof(std::uint64_t) != 0)
    fail_here(what, ": the barrier does not start on 8 bytes");
  return static_cast<std::size_t>(p - launch.shared);
}

// The barrier at `offset`, which mbarrier_init must have set up and fence_mbarrier_init and a __syncthreads
// published since (the GPU's other threads and its copy engine may see the word uninitialized otherwise).
Mbarrier& usable_mbarrier(std::size_t offset, const char* what) {
  Launch& launch = *active;
  const auto found = launch.mbarriers.find(offset);
  if (found == launch.mbarriers.end())
    fail_here(what, " at shared offset ", offset, ", where no mbarrier_init has set up a barrier");
  Mbarrier& barrier = found->second;
  if (!barrier.fenced || launch.barrier_generation == barrier.fenced_at_generation)
    fail_here(what, " on the mbarrier at shared offset ", offset,
              " before its initialization was published: mbarrier_init, then fence_mbarrier_init and a "
              "__syncthreads, must come first");
  return barrier;
}

// Completes the barrier's current phase when it waits for no more arrivals and no more bytes, and wakes
// the threads waiting on it (each checks its parity again).
void complete_phase_if_done(Mbarrier& barrier, std::size_t offset) {
  if (barrier.pending > 0 || barrier.bytes > 0) return;
  if (!barrier.copies.empty())
    fail_here("the mbarrier at shared offset ", offset, " completed a phase with ", barrier.copies.size(),
              " tensor copies still in flight: mbarrier_arrive_expect_tx announced fewer bytes than the "
              "copies deliver");
  ++barrier.completed;
  barrier.pending = barrier.arrivals;
  const Launch& launch = *active;
  for (int i = 0; i < launch.threads; ++i) {
    Fiber& fiber = (*launch.fibers)[static_cast<std::size_t>(i)];
    if (fiber.state == State::AtMbarrier && fiber.waiting_barrier == offset) fiber.state = State::Runnable;
  }
}

void arrive_on(std::uint64_t* barrier_word, std::int64_t bytes, const char* what) {
  const std::size_t offset = mbarrier_offset(barrier_word, what);
  Mbarrier& barrier = usable_mbarrier(offset, what);
  if (bytes < 0) fail_here(what, ": ", bytes, " transaction bytes");
  if (barrier.pending == 0)
    fail_here(what, ": one arrival more than the ", barrier.arrivals, " that the mbarrier at shared offset ",
              offset, " expects in a phase");
  barrier.bytes += bytes;
  --barrier.pending;
  complete_phase_if_done(barrier, offset);
}

// Writes a copy's box as the copy engine does (tma.cuh): line L (dimension 1 fastest) gets box[0] elements
// of dimension 0 at line_bytes L from the destination, the swizzle of that width applied to the shared
// address formed (bits 4.. ^= bits 7..: three bits for 128-byte lines, two for 64, one for 32); along
// dimension i >= 1 the box takes every steps[i]-th element; elements outside the tensor land as zeros.
void land_tensor_copy(const TensorCopy& copy) {
  using kernels::ladder::kTmaMaxRank;
  const Launch& launch = *active;
  const kernels::ladder::TensorMapShape& shape = copy.map.shape;
  const std::uint32_t start = kernels::ladder::shared_address(copy.destination);
  const int lines = kernels::ladder::box_lines(shape), line_bytes = kernels::ladder::line_bytes(shape);
  const auto first_chunk = static_cast<std::size_t>(copy.destination - launch.shared) / 16;
  const auto chunks = static_cast<std::size_t>(lines) * static_cast<std::size_t>(line_bytes) / 16;
  for (std::size_t chunk = first_chunk; chunk < first_chunk + chunks; ++chunk)
    if (launch.wgmma_readers[chunk] > 0)
      fail_here(
          "a wgmma was issued on a tile whose tensor copy had not landed: no mbarrier_wait on the copy's "
          "barrier came before it");
  for (int line = 0; line < lines; ++line) {
    // The line's position in the box, dimension by dimension, and from it the tensor's element.
    std::int64_t element[kTmaMaxRank] = {}, offset = 0;
    bool inside = true;
    for (int i = 1, rest = line; i < shape.rank; rest /= shape.box[i], ++i) {
      element[i] = copy.coordinates[i] + std::int64_t{rest % shape.box[i]} * shape.steps[i];
      inside = inside && element[i] >= 0 && element[i] < shape.sizes[i];
      offset += element[i] * shape.strides[i];
    }
    const auto* const base = static_cast<const unsigned char*>(copy.map.base);
    const int bytes = kernels::ladder::element_bytes(shape);
    for (int e = 0; e < shape.box[0]; ++e) {
      const std::int64_t column = std::int64_t{copy.coordinates[0]} + e;
      unsigned char value[4] = {};
      if (inside && column >= 0 && column < shape.sizes[0])
        std::memcpy(value, base + (offset + column) * bytes, static_cast<std::size_t>(bytes));
      const std::uint32_t logical = start + static_cast<std::uint32_t>(line_bytes * line + bytes * e);
      const auto xor_mask = static_cast<std::uint32_t>(line_bytes / 16 - 1);
      const std::uint32_t physical = logical ^ ((logical >> 7 & xor_mask) << 4);
      std::memcpy(launch.shared + (physical - kSharedWindowOrigin), value, static_cast<std::size_t>(bytes));
    }
  }
}

// Lands every copy queued on the barrier, counting their bytes off its phase.
void land_tensor_copies(Mbarrier& barrier, std::size_t offset) {
  const std::vector<TensorCopy> copies = std::move(barrier.copies);
  barrier.copies.clear();
  for (const TensorCopy& copy : copies) {
    land_tensor_copy(copy);
    barrier.bytes -= std::int64_t{kernels::ladder::line_bytes(copy.map.shape)} *
                     kernels::ladder::box_lines(copy.map.shape);
  }
  if (barrier.bytes < 0)
    fail_here("tensor copies delivered ", -barrier.bytes, " bytes more than mbarrier_arrive_expect_tx ",
              "announced on the mbarrier at shared offset ", offset);
  complete_phase_if_done(barrier, offset);
}

struct RegisterSlot {
  int count;
  const char* name;
};

void set_registers_operation(void* const* slots, Warpgroup&) {
  const auto& first = *static_cast<const RegisterSlot*>(slots[0]);
  for (int t = 1; t < kWarpgroupThreads; ++t) {
    const auto& slot = *static_cast<const RegisterSlot*>(slots[t]);
    if (slot.count != first.count || std::strcmp(slot.name, first.name) != 0)
      fail_here("the threads of a warpgroup disagree at setmaxnreg: thread ", t, " has ", slot.name, " ",
                slot.count, ", thread 0 ", first.name, " ", first.count);
  }
}

// Launches so far, by kernel name. Launches come from the host thread that runs the model; the lock is for
// the tests that ask.
struct LaunchCounts {
  std::mutex mutex;
  std::map<std::string, std::uint64_t, std::less<>> by_name;
};
LaunchCounts& launch_counts() {
  static LaunchCounts counts;
  return counts;
}
void count_launch(const char* name) {
  LaunchCounts& counts = launch_counts();
  const std::lock_guard lock(counts.mutex);
  ++counts.by_name[name];
}

}  // namespace

// ---- The interface ----------------------------------------------------------------------------------------
void register_device_buffer(const void* data, std::size_t bytes) {
  DeviceBuffers& buffers = device_buffers();
  const std::lock_guard lock(buffers.mutex);
  buffers.ranges.insert(data, bytes);
}
void unregister_device_buffer(const void* data) {
  DeviceBuffers& buffers = device_buffers();
  const std::lock_guard lock(buffers.mutex);
  buffers.ranges.erase(data);
}
bool inside_device_memory(const void* data, std::size_t bytes) { return inside_device_buffer(data, bytes); }
std::uint64_t kernel_launches(std::string_view name) {
  LaunchCounts& counts = launch_counts();
  const std::lock_guard lock(counts.mutex);
  const auto found = counts.by_name.find(name);
  return found == counts.by_name.end() ? 0 : found->second;
}
std::uint64_t kernel_launches() {
  LaunchCounts& counts = launch_counts();
  const std::lock_guard lock(counts.mutex);
  std::uint64_t total = 0;
  for (const auto& entry : counts.by_name) total += entry.second;
  return total;
}
bool touches_device_memory(const void* data, std::size_t bytes) { return touches_device_buffer(data, bytes); }

namespace {
void execute_grid(const char* name, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                  const std::function<void()>& body);
}  // namespace

// Checked and counted when launched, as a GPU's launch does; run then, or at each launch of the graph being
// captured.
void run_grid(const char* name, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
              const std::function<void()>& body) {
  KILN_CHECK(active == nullptr, name,
             ": launched from inside a kernel (the emulator runs one grid at a time)");
  count_launch(name);
  // The launch configuration CUDA would refuse.
  KILN_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1, name, ": empty grid ",
             describe({grid.x, grid.y, grid.z}));
  KILN_CHECK(grid.x <= 2147483647u && grid.y <= 65535u && grid.z <= 65535u, name, ": grid ",
             describe({grid.x, grid.y, grid.z}), " over CUDA's limits (2^31 - 1, 65535, 65535)");
  KILN_CHECK(
      block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 && block.y <= 1024 && block.z <= 64,
      name, ": block ", describe({block.x, block.y, block.z}), " outside CUDA's limits");
  const std::uint64_t threads = std::uint64_t{block.x} * block.y * block.z;
  KILN_CHECK(threads <= 1024, name, ": ", threads, " threads per block, over CUDA's 1024");
  KILN_CHECK(dynamic_shared_bytes <= kMaxDynamicSharedBytes, name, ": ", dynamic_shared_bytes,
             " bytes of dynamic shared memory, over the 227 KiB an H100 block may have");
  default_stream_work([=] { execute_grid(name, grid, block, dynamic_shared_bytes, body); });
}

namespace {

void execute_grid(const char* name, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                  const std::function<void()>& body) {
  const std::uint64_t threads = std::uint64_t{block.x} * block.y * block.z;

  Launch launch;
  launch.name = name;
  launch.grid = grid;
  launch.block = block;
  launch.body = &body;
  launch.threads = static_cast<int>(threads);
  stack_pool.reserve(launch.threads);
  launch.fibers = &stack_pool.fibers;
  launch.warps.resize(static_cast<std::size_t>((launch.threads + 31) / 32));
  for (std::size_t w = 0; w < launch.warps.size(); ++w)
    launch.warps[w].lanes = std::min(32, launch.threads - static_cast<int>(w) * 32);
  if (launch.threads % kWarpgroupThreads == 0)
    launch.warpgroups.resize(static_cast<std::size_t>(launch.threads / kWarpgroupThreads));

  // The dynamic shared memory ends flush against a page with no access (its size rounded to 16 bytes, so
  // that it starts on 16 as CUDA's does).
  launch.shared_bytes = round_up(dynamic_shared_bytes, 16);
  const std::size_t shared_pages = round_up(launch.shared_bytes, page_size());
  Mapping shared_mapping(shared_pages + page_size());
  shared_mapping.protect(shared_pages, page_size());
  launch.shared = shared_mapping.base() + shared_pages - launch.shared_bytes;
  launch.wgmma_readers.assign(launch.shared_bytes / 16, 0);

  grid_size = grid;
  block_size = block;
  fault_kernel = name;
  start_watchdog();
  launch_name.store(name);
  launch_started_ms.store(now_ms());
  install_fault_handler();
  active = &launch;
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) run_block(launch, {x, y, z});
  } catch (...) {
    active = nullptr;
    launch_started_ms.store(0);
    remove_fault_handler();
    throw;
  }
  active = nullptr;
  launch_started_ms.store(0);
  remove_fault_handler();
}

}  // namespace

unsigned char* dynamic_shared_memory() { return launch_here("dynamic_shared_memory()").shared; }

void sync_threads() {
  Launch& launch = launch_here("__syncthreads");
  Fiber& fiber = *launch.current;
  if (++launch.barrier_arrived < launch.threads) {
    fiber.state = State::AtBlockBarrier;
    fiber.waiting_at = "__syncthreads";
    yield_to_scheduler();
    return;
  }
  launch.barrier_arrived = 0;  // the last to arrive releases the block
  ++launch.barrier_generation;
  for (int i = 0; i < launch.threads; ++i) {
    Fiber& other = (*launch.fibers)[static_cast<std::size_t>(i)];
    if (other.state == State::AtBlockBarrier) other.state = State::Runnable;
  }
}

void sync_warp(unsigned mask) {
  check_full_mask(mask, "__syncwarp");
  warp_collective("__syncwarp", sync_warp_operation, nullptr, false);
}

void warp_shuffle(unsigned mask, const void* value, void* result, std::size_t bytes, ShuffleMode mode,
                  int lane_arg, int width) {
  check_full_mask(mask, "__shfl_*_sync");
  ShuffleSlot slot{value, result, bytes, mode, lane_arg, width};
  warp_collective("__shfl_*_sync", shuffle_operation, &slot, false);
}

}  // namespace kiln::emulation

namespace kiln::kernels::ladder {

using emulation::fail_here;

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits; the low 13 bits come back
// zero. Adding half of the dropped unit to the magnitude bits and truncating does exactly that (a carry into
// the exponent is the right result, up to infinity); NaN and infinity pass unchanged.
std::uint32_t to_tf32(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7f800000u) == 0x7f800000u) return bits;
  return (bits + 0x1000u) & 0xffffe000u;
}

void mma_m16n8k8_tf32(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
  emulation::MmaSlot slot{c, a, b};
  emulation::warp_collective("mma.sync.m16n8k8.tf32", emulation::mma_tf32_operation, &slot, true);
}

void mma_m16n8k16_bf16(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
  emulation::MmaSlot slot{c, a, b};
  emulation::warp_collective("mma.sync.m16n8k16.bf16", emulation::mma_bf16_operation, &slot, true);
}

void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_of_this_lane) {
  emulation::LdmatrixSlot slot{r, row_of_this_lane};
  emulation::warp_collective("ldmatrix.x4", emulation::ldmatrix_operation<false>, &slot, true);
}

void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* row_of_this_lane) {
  emulation::LdmatrixSlot slot{r, row_of_this_lane};
  emulation::warp_collective("ldmatrix.x4.trans", emulation::ldmatrix_operation<true>, &slot, true);
}

std::uint32_t shared_address(const void* shared_pointer) {
  const emulation::Launch& launch = emulation::launch_here("shared_address");
  const auto* p = static_cast<const unsigned char*>(shared_pointer);
  if (p < launch.shared || p > launch.shared + launch.shared_bytes)
    fail_here(
        "shared_address of a pointer outside the dynamic shared memory (the emulator gives addresses "
        "to the dynamic shared memory only)");
  return emulation::kSharedWindowOrigin + static_cast<std::uint32_t>(p - launch.shared);
}

bool wgmma_available() { return true; }  // the emulator's device is an H100

void fence_proxy_async_shared() {
  emulation::launch_here("fence_proxy_async_shared").current->unfenced_copies = false;
}

void wgmma_fence_emulated() {
  emulation::warpgroup_collective("wgmma.fence", emulation::wgmma_fence_operation, nullptr);
}

void wgmma_commit_group() {
  emulation::warpgroup_collective("wgmma.commit_group", emulation::wgmma_commit_operation, nullptr);
}

void wgmma_wait_emulated(int pending) {
  if (pending < 0) fail_here("wgmma_wait<", pending, ">");
  emulation::warpgroup_collective("wgmma.wait_group", emulation::wgmma_wait_operation, &pending);
}

void wgmma_bf16_emulated(int n, float* d, std::uint64_t a, std::uint64_t b, bool accumulate, Major a_major,
                         Major b_major) {
  emulation::WgmmaSlot slot{n, emulation::WgmmaType::Bf16, d, a, b, accumulate, a_major, b_major};
  emulation::warpgroup_collective("wgmma.mma_async.bf16", emulation::wgmma_issue_operation, &slot);
}

void wgmma_tf32_emulated(int n, float* d, std::uint64_t a, std::uint64_t b, bool accumulate) {
  emulation::WgmmaSlot slot{n, emulation::WgmmaType::Tf32, d, a, b, accumulate, Major::K, Major::K};
  emulation::warpgroup_collective("wgmma.mma_async.tf32", emulation::wgmma_issue_operation, &slot);
}

void wgmma_tf32_register_a_emulated(int n, float* d, const std::uint32_t* a, std::uint64_t b,
                                    bool accumulate) {
  emulation::WgmmaSlot slot{n, emulation::WgmmaType::Tf32, d, 0, b, accumulate, Major::K, Major::K, a};
  emulation::warpgroup_collective("wgmma.mma_async.tf32 (A from registers)", emulation::wgmma_issue_operation,
                                  &slot);
}

void cp_async_16(void* shared_destination, const void* global_source, bool in_bounds) {
  emulation::queue_copy(shared_destination, global_source, 16, in_bounds);
}

void cp_async_4(void* shared_destination, const void* global_source, bool in_bounds) {
  emulation::queue_copy(shared_destination, global_source, 4, in_bounds);
}

void cp_async_commit() {
  emulation::Fiber& fiber = *emulation::launch_here("cp_async_commit").current;
  fiber.group_sizes.push_back(fiber.open_copies);
  fiber.open_copies = 0;
}

// Lands every committed group but the newest `pending`, oldest first; copies not yet committed stay queued.
void cp_async_wait_pending(int pending) {
  emulation::Fiber& fiber = *emulation::launch_here("cp_async_wait").current;
  if (pending < 0) fail_here("cp_async_wait<", pending, ">");
  const int groups = static_cast<int>(fiber.group_sizes.size()) - pending;
  if (groups <= 0) return;
  std::size_t landed = 0;
  for (int g = 0; g < groups; ++g)
    landed += static_cast<std::size_t>(fiber.group_sizes[static_cast<std::size_t>(g)]);
  for (std::size_t i = 0; i < landed; ++i) {
    const emulation::Copy& copy = fiber.copies[i];
    if (copy.in_bounds) {
      std::memcpy(copy.destination, copy.source, static_cast<std::size_t>(copy.bytes));
    } else {
      std::memset(copy.destination, 0, static_cast<std::size_t>(copy.bytes));
    }
  }
  if (landed > 0) fiber.unfenced_copies = true;
  fiber.copies.erase(fiber.copies.begin(), fiber.copies.begin() + static_cast<std::ptrdiff_t>(landed));
  fiber.group_sizes.erase(fiber.group_sizes.begin(), fiber.group_sizes.begin() + groups);
}

}  // namespace kiln::kernels::ladder

// ---- mbarrier, tensor copies and setmaxnreg: the interface ------------------------------------------------
namespace kiln::kernels::ladder {

using emulation::fail_here;

void mbarrier_init(std::uint64_t* barrier, int arrivals) {
  emulation::Launch& launch = emulation::launch_here("mbarrier_init");
  const std::size_t offset = emulation::mbarrier_offset(barrier, "mbarrier_init");
  if (arrivals < 1 || arrivals >= (1 << 20))
    fail_here("mbarrier_init with ", arrivals, " arrivals (1 to 2^20 - 1)");
  const auto found = launch.mbarriers.find(offset);
  if (found != launch.mbarriers.end() && !found->second.copies.empty())
    fail_here("mbarrier_init on the mbarrier at shared offset ", offset,
              " while tensor copies are in flight on it");
  emulation::Mbarrier fresh;
  fresh.arrivals = fresh.pending = arrivals;
  launch.mbarriers[offset] = fresh;
}

void fence_mbarrier_init() {
  emulation::Launch& launch = emulation::launch_here("fence_mbarrier_init");
  for (auto& [offset, barrier] : launch.mbarriers) {
    if (barrier.fenced) continue;
    barrier.fenced = true;
    barrier.fenced_at_generation = launch.barrier_generation;
  }
}

void mbarrier_arrive(std::uint64_t* barrier) { emulation::arrive_on(barrier, 0, "mbarrier_arrive"); }

void mbarrier_arrive_expect_tx(std::uint64_t* barrier, int bytes) {
  emulation::arrive_on(barrier, bytes, "mbarrier_arrive_expect_tx");
}

// Returns once the phase of parity `parity` has completed: at once when the current phase has the other
// parity. Landing the barrier's copies may complete it; otherwise the thread sleeps until it completes.
void mbarrier_wait(std::uint64_t* barrier_word, int parity) {
  emulation::Launch& launch = emulation::launch_here("mbarrier_wait");
  if (parity != 0 && parity != 1) fail_here("mbarrier_wait for parity ", parity, " (0 or 1)");
  const std::size_t offset = emulation::mbarrier_offset(barrier_word, "mbarrier_wait");
  for (;;) {
    emulation::Mbarrier& barrier = emulation::usable_mbarrier(offset, "mbarrier_wait");
    if (static_cast<int>(barrier.completed % 2) != parity) return;
    if (!barrier.copies.empty()) {
      emulation::land_tensor_copies(barrier, offset);
      continue;
    }
    emulation::Fiber& fiber = *launch.current;
    fiber.state = emulation::State::AtMbarrier;
    fiber.waiting_at = "mbarrier_wait";
    fiber.waiting_barrier = offset;
    fiber.waiting_parity = parity;
    emulation::yield_to_scheduler();
  }
}

TensorMap bf16_tensor_map_128b(const bfloat16* base, const TensorMapShape& shape) {
  require_tensor_map_rules(base, TmaElement::Bf16, shape);
  return TensorMap{base, shape};
}

TensorMap float_tensor_map_128b(const float* base, const TensorMapShape& shape) {
  require_tensor_map_rules(base, TmaElement::Float, shape);
  return TensorMap{base, shape};
}

void tma_load_emulated(void* destination, const TensorMap& map, const int* coordinates, int rank,
                       std::uint64_t* barrier_word) {
  emulation::Launch& launch = emulation::launch_here("tma_load");
  if (rank != map.shape.rank)
    fail_here("tma_load: ", rank, " coordinates for a tensor map of rank ", map.shape.rank);
  const std::size_t barrier_offset = emulation::mbarrier_offset(barrier_word, "tma_load");
  emulation::Mbarrier& barrier = emulation::usable_mbarrier(barrier_offset, "tma_load");
  auto* const d = static_cast<unsigned char*>(destination);
  const std::size_t bytes =
      static_cast<std::size_t>(line_bytes(map.shape)) * static_cast<std::size_t>(box_lines(map.shape));
  if (d < launch.shared || d + bytes > launch.shared + launch.shared_bytes)
    fail_here("tma_load: the box's ", bytes, " bytes do not fit in the dynamic shared memory");
  if (shared_address(d) % 128 != 0) fail_here("tma_load: a destination that does not start on 128 bytes");
  const auto offset = static_cast<std::size_t>(d - launch.shared);
  for (std::size_t chunk = offset / 16; chunk < (offset + bytes) / 16; ++chunk)
    if (launch.wgmma_readers[chunk] > 0)
      fail_here(
          "tma_load into shared memory that an issued wgmma reads and no wgmma_wait has retired: the copy "
          "may land before the tensor cores read");
  const auto overlapped = launch.mbarriers.lower_bound(offset);
  if (overlapped != launch.mbarriers.end() && overlapped->first < offset + bytes)
    fail_here("tma_load: the box would overwrite the mbarrier at shared offset ", overlapped->first);
  // The tensor's extent: its last element's offset, plus one.
  std::int64_t extent = map.shape.sizes[0];
  for (int i = 1; i < map.shape.rank; ++i) extent += (map.shape.sizes[i] - 1) * map.shape.strides[i];
  if (emulation::any_device_buffer() &&
      !emulation::inside_device_buffer(map.base, static_cast<std::size_t>(extent * element_bytes(map.shape))))
    fail_here("tma_load: the tensor map's tensor lies outside every operand of the launch");
  emulation::TensorCopy copy{d, map, {}};
  std::copy(coordinates, coordinates + rank, copy.coordinates);
  barrier.copies.push_back(copy);
}

void warpgroup_set_registers_emulated(int count, const char* name) {
  emulation::RegisterSlot slot{count, name};
  emulation::warpgroup_collective(name, emulation::set_registers_operation, &slot);
}

}  // namespace kiln::kernels::ladder
