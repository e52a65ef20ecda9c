// The GEMM ladder against cuBLAS: every step of kernels/gemm/ladder (its steps() table, so a new step
// appears here with no change) on square and a few skinny and odd sizes, beside cuBLAS in the same
// precision, on cuda:0.
//
//   ./build/gemm_ladder [--quick] [--sizes 1024,4096,128x4096x4096] [--filter 05,06] [--precision tf32]
//                       [--budget-ms 50] [--json FILE] [--list]
//
// One row per (size, precision, version), printed as it is measured (progress on stderr):
//   size        M x N x K of C[M, N] = A[M, K] B[K, N], row-major, alpha 1, beta 0
//   prec        fp32, tf32 or bf16 (kernels/ladder/precision.hpp); cuBLAS in the same precision:
//                 fp32  cublasSgemm, default math mode (pure FP32: no TF32 unless NVIDIA_TF32_OVERRIDE=1)
//                 tf32  cublasGemmEx, CUDA_R_32F A/B/C, CUBLAS_COMPUTE_32F_FAST_TF32
//                 bf16  cublasGemmEx, CUDA_R_16BF A/B, CUDA_R_32F C, CUBLAS_COMPUTE_32F
//   version     "cublas" or the step's name
//   median ms   the median time of one run (harness.hpp: events, gated batches, rotating inputs)
//   min ms      the fastest sample's time per run
//   TFLOP/s     2 M N K / median
//   % peak      of the measured peak for the precision (peak.hpp: FFMA for fp32, mma.sync for tf32 (which
//               cuBLAS's wgmma may exceed), wgmma for bf16 where the build and the GPU have it)
//   x cuBLAS    speed relative to cuBLAS in the same precision: cuBLAS's median / this row's (above 1:
//   faster) check       the result against cuBLAS's FP32 SGEMM on the same inputs: "ok" or "WRONG" and the
//   largest
//               error scaled by sum_k |a||b| (tolerance fp32 1e-4, tf32 4e-3, bf16 1e-3). A step whose
//               result is WRONG gets no time; "failed: ..." when it threw (unsupported, launch error).
// Steps that do not support a size (alignment: K and N multiples of the step's `alignment`) are left out.
//
// The inputs are random values exactly representable in bfloat16 (harness.hpp), the same for every
// precision, so one FP32 reference checks every row. Exits 0 without a GPU ("no CUDA device: nothing to
// measure"), 1 when a step was WRONG or failed, 2 on a bad command line.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/ladder/harness.hpp"
#include "bench/ladder/peak.hpp"
#include "core/cuda_runtime.hpp"
#include "kernels/gemm/ladder/ladder.hpp"

namespace {

using namespace kiln::bench::ladder;
namespace gemm_ladder = kiln::kernels::gemm_ladder;

// ---- cuBLAS ----------------------------------------------------------------------------------------------

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    kiln::fail("cuBLAS: ", call, " failed: ", cublasGetStatusName(status), ": ",
               cublasGetStatusString(status), " (", file, ":", line, ")");
}
#define LADDER_CUBLAS(call) check_cublas((call), #call, __FILE__, __LINE__)

class Cublas {
 public:
  Cublas() {
    LADDER_CUBLAS(cublasCreate(&handle_));
    LADDER_CUBLAS(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));  // Sgemm stays FP32; GemmEx says its own
  }
  ~Cublas() { cublasDestroy(handle_); }
  int version() const {
    int version = 0;
    LADDER_CUBLAS(cublasGetVersion(handle_, &version));
    return version;
  }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;

  // C[M, N] = A[M, K] B[K, N], row-major, in `precision` (A and B float, or bfloat16 for bf16), on the
  // default stream. cuBLAS is column-major, and a row-major matrix read column-major is its transpose, so
  // this computes C^T[N, M] = B^T[N, K] A^T[K, M]: cuBLAS's first operand is our B (leading dimension N),
  // its second our A (leading dimension K), and C^T comes out column-major with leading dimension N, which
  // is C row-major.
  void gemm(Precision precision, int m, int n, int k, const void* a, const void* b, float* c) const {
    const float alpha = 1.0f, beta = 0.0f;
    switch (precision) {
      case Precision::Fp32:
        LADDER_CUBLAS(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha,
                                  static_cast<const float*>(b), n, static_cast<const float*>(a), k, &beta, c,
                                  n));
        return;
      case Precision::Tf32:
        LADDER_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_32F, n, a,
                                   CUDA_R_32F, k, &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32,
                                   CUBLAS_GEMM_DEFAULT));
        return;
      case Precision::Bf16:
        LADDER_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_16BF, n, a,
                                   CUDA_R_16BF, k, &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
        return;
    }
  }

 private:
  cublasHandle_t handle_ = nullptr;
};

// ---- sizes and options ------------------------------------------------------------------------------------

struct GemmSize {
  std::string name;  // "4096x4096x4096"
  int m, n, k;
  double flop() const { return 2.0 * m * n * static_cast<double>(k); }
};

GemmSize make_size(int m, int n, int k) {
  return {std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k), m, n, k};
}

std::vector<GemmSize> default_sizes(bool quick) {
  if (quick) return {make_size(4096, 4096, 4096)};
  return {
      make_size(1024, 1024, 1024), make_size(2048, 2048, 2048), make_size(4096, 4096, 4096),
      make_size(8192, 8192, 8192), make_size(128, 4096, 4096),  // skinny M: a batch of 128 rows through a
                                                                // 4096-wide layer
      make_size(4096, 4096, 128),   // short K: little reuse per output, the epilogue's share grows
      make_size(64, 8192, 576),     // ResNet's 64->64 3x3 convolution at 8x8, batch 128, as one im2col GEMM
      make_size(2047, 2045, 2043),  // odd: every tile edge ragged; only alignment-1 steps (and cuBLAS) run it
  };
}

// "4096" (square) or "MxNxK".
GemmSize parse_size(const std::string& text) {
  std::vector<int> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t x = std::min(text.find('x', start), text.size());
    const double value = number_value("--sizes", text.substr(start, x - start));
    KILN_CHECK(value >= 1 && value <= 1 << 20 && value == static_cast<int>(value), "--sizes: '", text,
               "' is not a size (N or MxNxK, each from 1 to 2^20)");
    parts.push_back(static_cast<int>(value));
    start = x + 1;
  }
  KILN_CHECK(parts.size() == 1 || parts.size() == 3, "--sizes: '", text, "' is neither N nor MxNxK");
  return parts.size() == 1 ? make_size(parts[0], parts[0], parts[0])
                           : make_size(parts[0], parts[1], parts[2]);
}

struct Options {
  CommonOptions common;
  std::vector<GemmSize> sizes;
  bool list = false;
};

const char* const kUsage =
    "usage: gemm_ladder [options]\n"
    "  --sizes LIST        N (square) or MxNxK, comma-separated (default: 1024..8192 squares, skinny, odd;\n"
    "                      --quick: 4096)\n"
    "  --list              print the ladder's steps and exit\n";

Options parse_options(int argc, char** argv) {
  Options options;
  std::string sizes;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::printf("%s%s", kUsage, kCommonUsage);
      std::exit(0);
    }
    if (parse_common_flag(argc, argv, i, options.common)) continue;
    if (flag == "--list") {
      options.list = true;
    } else if (flag == "--sizes") {
      KILN_CHECK(i + 1 < argc, "--sizes needs a value");
      sizes = argv[++i];
    } else {
      kiln::fail("unknown option ", flag, " (see --help)");
    }
  }
  if (sizes.empty()) {
    options.sizes = default_sizes(options.common.quick);
  } else {
    for (const std::string& size : split_list(sizes)) options.sizes.push_back(parse_size(size));
  }
  return options;
}

// ---- one row ----------------------------------------------------------------------------------------------

struct Row {
  std::string size;
  Precision precision = Precision::Fp32;
  std::string version;  // "cublas" or the step's name
  bool vendor = false;
  std::string status = "ok";  // "ok", "WRONG", "failed: <why>"
  bool checked = false;
  double error = 0.0;
  bool timed = false;
  Timing timing;
  double tflops = 0.0, percent_of_peak = 0.0, ratio = 0.0;
  bool has_ratio = false;
};

// What a size's rows share: the reference, the output buffer, the peaks and the options.
struct SizeContext {
  const GemmSize& size;
  const Options& options;
  const Peaks& peaks;
  const std::vector<float>& reference;  // C = A B by cuBLAS SGEMM
  const std::vector<float>& scale;      // |A| |B| by cuBLAS SGEMM: the check's per-element scale
  const DeviceBuffer& output;           // C, M x N floats
  std::vector<float>& downloaded;       // room for C on the host
};

// Checks `run` on input copy 0, then times it over every copy. A ladder step that is WRONG is not timed.
Row measure(const SizeContext& context, Row row, int copies, const std::function<void(int)>& run) {
  const std::size_t elements = static_cast<std::size_t>(context.size.m) * context.size.n;
  context.output.poison();
  run(0);
  LADDER_CUDA(cudaDeviceSynchronize());
  context.output.download(context.downloaded.data(), elements * sizeof(float));
  row.checked = true;
  row.error =
      max_scaled_error(context.downloaded.data(), context.reference.data(), context.scale.data(), elements);
  if (!(row.error <= tolerance(row.precision))) {
    row.status = "WRONG";
    if (!row.vendor) return row;  // never a time for a wrong result; a vendor's keeps its time, flagged
  }
  context.output.poison();
  row.timing = time_runs(context.options.common.timing, copies, run);
  row.timed = true;
  row.tflops = context.size.flop() / (row.timing.median_ms * 1e-3) * 1e-12;
  const double peak = peak_tflops(context.peaks, row.precision);
  row.percent_of_peak = peak > 0 ? 100.0 * row.tflops / peak : 0.0;
  return row;
}

void print_header() {
  std::printf("%-16s %-5s %-22s %10s %10s %8s %7s %8s  %s\n", "size", "prec", "version", "median ms",
              "min ms", "TFLOP/s", "% peak", "x cuBLAS", "check");
}

void print_row(const Row& row) {
  std::string check =
      row.checked ? (row.status == "ok" ? "ok " : row.status + " ") + error_cell(row.error) : row.status;
  if (row.timed && !row.timing.gated) check += " (ungated)";
  std::printf("%-16s %-5s %-22s %10s %10s %8s %7s %8s  %s\n", row.size.c_str(),
              std::string(precision_name(row.precision)).c_str(), row.version.c_str(),
              milliseconds_cell(row.timing.median_ms, row.timed).c_str(),
              milliseconds_cell(row.timing.min_ms, row.timed).c_str(), cell(row.tflops, 1, row.timed).c_str(),
              cell(row.percent_of_peak, 1, row.timed).c_str(), cell(row.ratio, 2, row.has_ratio).c_str(),
              check.c_str());
  std::fflush(stdout);
}

nlohmann::json row_json(const Row& row, const GemmSize& size) {
  nlohmann::json json = {{"size", row.size},
                         {"m", size.m},
                         {"n", size.n},
                         {"k", size.k},
                         {"precision", std::string(precision_name(row.precision))},
                         {"version", row.version},
                         {"vendor", row.vendor},
                         {"status", row.status}};
  if (row.checked) json["max_scaled_error"] = std::isfinite(row.error) ? nlohmann::json(row.error) : nullptr;
  if (row.timed) {
    json["median_ms"] = row.timing.median_ms;
    json["min_ms"] = row.timing.min_ms;
    json["samples"] = row.timing.samples;
    json["runs_per_sample"] = row.timing.runs_per_sample;
    json["gated"] = row.timing.gated;
    json["tflops"] = row.tflops;
    json["percent_of_peak"] = row.percent_of_peak;
  }
  if (row.has_ratio) json["speed_vs_cublas"] = row.ratio;
  return json;
}

// ---- one size ---------------------------------------------------------------------------------------------

struct RunState {
  std::vector<nlohmann::json> rows;
  bool any_wrong_or_failed = false;
  bool device_lost = false;
};

void run_size(const GemmSize& size, const Options& options, const Peaks& peaks, const DeviceInfo& device,
              const Cublas& cublas, RunState& state) {
  const auto m = static_cast<std::size_t>(size.m), n = static_cast<std::size_t>(size.n),
             k = static_cast<std::size_t>(size.k);
  const std::vector<float> a = random_bf16_exact(m * k, options.common.seed * 2 + 1);
  const std::vector<float> b = random_bf16_exact(k * n, options.common.seed * 2 + 2);

  // The reference and the check's scale, by cuBLAS SGEMM (FP32) on A, B and on |A|, |B|.
  std::vector<float> reference(m * n), scale(m * n), downloaded(m * n);
  DeviceBuffer output(m * n * sizeof(float));
  {
    DeviceBuffer device_a(m * k * sizeof(float)), device_b(k * n * sizeof(float));
    device_a.upload(a.data(), device_a.bytes());
    device_b.upload(b.data(), device_b.bytes());
    cublas.gemm(Precision::Fp32, size.m, size.n, size.k, device_a.get(), device_b.get(), output.as<float>());
    output.download(reference.data(), output.bytes());
    device_a.upload(absolute(a).data(), device_a.bytes());
    device_b.upload(absolute(b).data(), device_b.bytes());
    cublas.gemm(Precision::Fp32, size.m, size.n, size.k, device_a.get(), device_b.get(), output.as<float>());
    output.download(scale.data(), output.bytes());
  }
  const SizeContext context{size, options, peaks, reference, scale, output, downloaded};

  // Float operands for fp32 and tf32, bfloat16 for bf16: one rotating set at a time.
  for (const bool bf16_operands : {false, true}) {
    std::vector<Precision> precisions;
    for (Precision p : {Precision::Fp32, Precision::Tf32, Precision::Bf16})
      if (wants(options.common, p) && (p == Precision::Bf16) == bf16_operands) precisions.push_back(p);
    if (precisions.empty()) continue;
    const std::size_t element = bf16_operands ? sizeof(kiln::bfloat16) : sizeof(float);
    const RotatingInputs inputs({m * k * element, k * n * element}, device.l2_bytes);
    if (bf16_operands) {
      inputs.fill(0, to_bf16(a).data(), m * k * element);
      inputs.fill(1, to_bf16(b).data(), k * n * element);
    } else {
      inputs.fill(0, a.data(), m * k * element);
      inputs.fill(1, b.data(), k * n * element);
    }
    inputs.replicate();

    for (Precision precision : precisions) {
      double vendor_ms = 0.0;
      // cuBLAS first (the ratio's denominator), then the steps in ladder order.
      struct Version {
        std::string name;
        bool vendor;
        std::function<void(int)> run;
      };
      std::vector<Version> versions;
      versions.push_back({"cublas", true, [&, precision](int copy) {
                            cublas.gemm(precision, size.m, size.n, size.k, inputs.tensor(copy, 0),
                                        inputs.tensor(copy, 1), output.as<float>());
                          }});
      const gemm_ladder::Problem problem{.m = size.m, .n = size.n, .k = size.k};
      for (const gemm_ladder::Step& step : gemm_ladder::steps()) {
        if (step.precision != precision || !step_selected(options.common, step.name) ||
            !gemm_ladder::supports(step, problem))
          continue;
        versions.push_back({std::string(step.name), false, [&, problem, launch = step.launch](int copy) {
                              launch(problem, inputs.tensor(copy, 0), inputs.tensor(copy, 1),
                                     output.as<float>());
                            }});
      }
      for (const Version& version : versions) {
        std::fprintf(stderr, "gemm_ladder: %s %s %s\n", size.name.c_str(),
                     std::string(precision_name(precision)).c_str(), version.name.c_str());
        Row row;
        row.size = size.name;
        row.precision = precision;
        row.version = version.name;
        row.vendor = version.vendor;
        try {
          row = measure(context, row, inputs.copies(), version.run);
        } catch (const std::exception& error) {
          row.status = std::string("failed: ") + error.what();
          if (!device_still_usable()) state.device_lost = true;
        }
        if (version.vendor && row.timed) vendor_ms = row.timing.median_ms;
        if (row.timed && vendor_ms > 0) {
          row.ratio = vendor_ms / row.timing.median_ms;
          row.has_ratio = true;
        }
        if (!row.vendor && row.status != "ok") state.any_wrong_or_failed = true;
        print_row(row);
        state.rows.push_back(row_json(row, size));
        if (state.device_lost) return;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse_options(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gemm_ladder: %s\n", error.what());
    return 2;
  }
  if (options.list) {
    for (const gemm_ladder::Step& step : gemm_ladder::steps())
      std::printf("%-22s %-5s alignment %d  %s\n", std::string(step.name).c_str(),
                  std::string(precision_name(step.precision)).c_str(), step.alignment,
                  std::string(step.summary).c_str());
    return 0;
  }
  if (no_device_to_measure(options.common, "gemm_ladder")) return 0;

  RunState state;
  nlohmann::json report = {{"program", "gemm_ladder"}};
  try {
    LADDER_CUDA(cudaSetDevice(0));
    const DeviceInfo device = query_device(kiln::cuda::device_description(0));
    const Cublas cublas;
    const int cublas_version = cublas.version();
    const Peaks peaks = measure_peaks(options.common.quick);
    std::printf("gemm_ladder: %s, %d SMs, L2 %.0f MiB, cuBLAS %d\n", device.description.c_str(),
                device.multiprocessors, mebibytes(device.l2_bytes), cublas_version);
    std::printf(
        "measured peaks (TFLOP/s): fp32 FFMA %.1f, tf32 mma.sync %.1f, bf16 mma.sync %.1f, bf16 wgmma %.1f\n",
        peaks.fp32_tflops, peaks.tf32_tflops, peaks.bf16_tflops, peaks.bf16_wgmma_tflops);
    std::printf(
        "  (%% peak: bf16 rows of the wgmma peak where there is one, else of mma.sync's; tf32 rows of "
        "mma.sync's, which cuBLAS's wgmma may exceed)\n");
    std::printf(
        "timing: median of event-timed samples, %.0f ms per row, inputs rotating over >= 3x L2; "
        "x cuBLAS = cuBLAS time / row time\n\n",
        options.common.timing.budget_ms);
    print_header();
    report["device"] = device.description;
    report["multiprocessors"] = device.multiprocessors;
    report["l2_bytes"] = device.l2_bytes;
    report["cublas_version"] = cublas_version;
    report["peaks_tflops"] = {{"fp32_ffma", peaks.fp32_tflops},
                              {"tf32_mma_sync", peaks.tf32_tflops},
                              {"bf16_mma_sync", peaks.bf16_tflops},
                              {"bf16_wgmma", peaks.bf16_wgmma_tflops}};
    report["budget_ms"] = options.common.timing.budget_ms;
    report["quick"] = options.common.quick;
    for (const GemmSize& size : options.sizes) {
      try {
        run_size(size, options, peaks, device, cublas, state);
      } catch (const std::exception& error) {  // outside any one row (memory, the reference): the next size
        std::fprintf(stderr, "gemm_ladder: %s: %s\n", size.name.c_str(), error.what());
        state.rows.push_back({{"size", size.name}, {"status", std::string("failed: ") + error.what()}});
        state.any_wrong_or_failed = true;
        if (!device_still_usable()) state.device_lost = true;
      }
      if (state.device_lost) break;
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gemm_ladder: %s\n", error.what());
    report["error"] = error.what();
    state.any_wrong_or_failed = true;
  }
  if (state.device_lost) {
    std::fprintf(stderr, "gemm_ladder: the device is unusable after a failed step; stopped early\n");
    report["error"] = "device unusable after a failed step; stopped early";
  }
  report["results"] = state.rows;
  write_json_report(options.common, report, "gemm_ladder");
  return state.any_wrong_or_failed || state.device_lost ? 1 : 0;
}
