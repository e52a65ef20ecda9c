// The convolution ladder against cuDNN: every step of kernels/conv2d/ladder (its steps() table, so a new
// step appears here with no change) on every convolution of the model zoo's CIFAR networks
// (conv_shapes.hpp), beside every algorithm cuDNN's legacy API offers for the same pass and precision,
// on cuda:0.
//
//   ./build/conv2d_ladder [--quick] [--models resnet20,mobilenet] [--batches 1,32,128,256]
//                         [--passes forward,backward_data,backward_weight] [--filter 04,05]
//                         [--precision tf32,bf16] [--budget-ms 50] [--json FILE] [--list]
//
// Rows, one block per (layer, batch), printed when the block is done (progress on stderr):
//   model      the models that have this layer's geometry ("resnet20,resnet56")
//   layer      "16->32 3x3 s2 @32" (channels, kernel, stride, input size), "dw 128 ..." depthwise,
//              "pw 128->256 1x1 @8" pointwise
//   batch, pass (forward, backward_data, backward_weight), prec (fp32, tf32, bf16)
//   version    the step's name (its layout is the step's), or "cudnn <layout> <algorithm>"; the fastest
//              cuDNN algorithm of the pass and precision is marked "*"
//   median ms, min ms, TFLOP/s (2 N K P Q (C / groups) R S / median), % peak (peak.hpp)
//   x cuDNN    speed relative to cuDNN's best algorithm in the same pass and precision, over both layouts:
//              cuDNN best time / this row's time (above 1: faster than cuDNN)
//   check      the result against cuDNN's FP32 (CUDNN_FMA_MATH, NCHW) result on the same inputs, as in
//              gemm_ladder.cpp; cuDNN's bf16 rows write bfloat16 and are not checked ("-")
// Then a summary: per pass and precision, the geometric mean over the ResNet-20/56 layers at batch 128 of
// (cuDNN best time / best ladder step time): the target is 0.8 or more.
//
// cuDNN in the same precision as the row (legacy API, cudnnConvolution{Forward,BackwardData,BackwardFilter}):
//   fp32  float tensors, CUDNN_FMA_MATH (no tensor cores, no TF32)
//   tf32  float tensors, CUDNN_TENSOR_OP_MATH (TF32 tensor cores allowed; not ..._ALLOW_CONVERSION, which
//         would let cuDNN convert to FP16)
//   bf16  CUDNN_DATA_BFLOAT16 tensors (input, filter and output: the legacy API has no float output for
//         bfloat16 inputs), float compute, CUDNN_TENSOR_OP_MATH
// each in NCHW and in NHWC (filters KRSC), every algorithm 0..cudnnGet*AlgorithmMaxCount - 1 timed with
// its own workspace; one that says NOT_SUPPORTED is left out. Ladder steps get their own layout's tensors,
// converted once on the host, outside the timing.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "bench/ladder/conv_shapes.hpp"
#include "bench/ladder/harness.hpp"
#include "bench/ladder/peak.hpp"
#include "core/cuda_runtime.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"

namespace {

using namespace kiln::bench::ladder;
namespace conv2d_ladder = kiln::kernels::conv2d_ladder;
using conv2d_ladder::Layout;
using conv2d_ladder::Pass;
using kiln::kernels::Conv2dGeometry;

constexpr Pass kPasses[] = {Pass::Forward, Pass::BackwardData, Pass::BackwardWeight};

// ---- cuDNN ------------------------------------------------------------------------------------------------

// A failed cuDNN call, with its status: the algorithm loops leave out the ones that say NOT_SUPPORTED.
class CudnnFailure : public kiln::Error {
 public:
  CudnnFailure(cudnnStatus_t status, const std::string& message) : kiln::Error(message), status_(status) {}
  bool not_supported() const { return CUDNN_STATUS_CATEGORY(status_) == CUDNN_STATUS_NOT_SUPPORTED; }

 private:
  cudnnStatus_t status_;
};

void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw CudnnFailure(status, kiln::detail::concat("cuDNN: ", call, " failed: ", cudnnGetErrorString(status),
                                                    " (", file, ":", line, ")"));
}
#define LADDER_CUDNN(call) check_cudnn((call), #call, __FILE__, __LINE__)

class Cudnn {
 public:
  Cudnn() { LADDER_CUDNN(cudnnCreate(&handle_)); }  // on the default stream
  ~Cudnn() { cudnnDestroy(handle_); }
  Cudnn(const Cudnn&) = delete;
  Cudnn& operator=(const Cudnn&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  cudnnHandle_t handle_ = nullptr;
};

cudnnTensorFormat_t format(Layout layout) {
  return layout == Layout::Nchw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
}

// The descriptors of one geometry in one layout, data type and math mode: x [N, C, H, W], w [K, C/g, R, S],
// y [N, K, P, Q] (cuDNN takes the sizes in this order whatever the layout; the format says the memory order).
class CudnnConvolution {
 public:
  CudnnConvolution(const Conv2dGeometry& g, Layout layout, cudnnDataType_t data, cudnnMathType_t math) {
    LADDER_CUDNN(cudnnCreateTensorDescriptor(&x_));
    LADDER_CUDNN(cudnnCreateTensorDescriptor(&y_));
    LADDER_CUDNN(cudnnCreateFilterDescriptor(&w_));
    LADDER_CUDNN(cudnnCreateConvolutionDescriptor(&conv_));
    const auto i = [](std::int64_t v) { return static_cast<int>(v); };
    LADDER_CUDNN(cudnnSetTensor4dDescriptor(x_, format(layout), data, i(g.batch), i(g.in_channels),
                                            i(g.in_height), i(g.in_width)));
    LADDER_CUDNN(cudnnSetTensor4dDescriptor(y_, format(layout), data, i(g.batch), i(g.out_channels),
                                            i(g.out_height()), i(g.out_width())));
    LADDER_CUDNN(cudnnSetFilter4dDescriptor(w_, data, format(layout), i(g.out_channels),
                                            i(g.in_channels_per_group()), i(g.kernel_h), i(g.kernel_w)));
    LADDER_CUDNN(cudnnSetConvolution2dDescriptor(conv_, i(g.pad_h), i(g.pad_w), i(g.stride_h), i(g.stride_w),
                                                 i(g.dilation_h), i(g.dilation_w), CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
    LADDER_CUDNN(cudnnSetConvolutionGroupCount(conv_, i(g.groups)));
    LADDER_CUDNN(cudnnSetConvolutionMathType(conv_, math));
  }
  ~CudnnConvolution() {
    cudnnDestroyConvolutionDescriptor(conv_);
    cudnnDestroyFilterDescriptor(w_);
    cudnnDestroyTensorDescriptor(y_);
    cudnnDestroyTensorDescriptor(x_);
  }
  CudnnConvolution(const CudnnConvolution&) = delete;
  CudnnConvolution& operator=(const CudnnConvolution&) = delete;

  int algorithm_count(cudnnHandle_t handle, Pass pass) const {
    int count = 0;
    switch (pass) {
      case Pass::Forward:
        LADDER_CUDNN(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &count));
        break;
      case Pass::BackwardData:
        LADDER_CUDNN(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &count));
        break;
      case Pass::BackwardWeight:
        LADDER_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &count));
        break;
    }
    return count;
  }

  // Throws CudnnFailure (NOT_SUPPORTED for an algorithm that does not take this convolution).
  std::size_t workspace_bytes(cudnnHandle_t handle, Pass pass, int algorithm) const {
    std::size_t bytes = 0;
    switch (pass) {
      case Pass::Forward:
        LADDER_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(
            handle, x_, w_, conv_, y_, static_cast<cudnnConvolutionFwdAlgo_t>(algorithm), &bytes));
        break;
      case Pass::BackwardData:
        LADDER_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(
            handle, w_, y_, conv_, x_, static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm), &bytes));
        break;
      case Pass::BackwardWeight:
        LADDER_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(
            handle, x_, y_, conv_, w_, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm), &bytes));
        break;
    }
    return bytes;
  }

  // The pass with the ladder's argument order: forward (x, w) -> y, backward data (gy, w) -> gx, backward
  // weight (gy, x) -> gw. alpha 1, beta 0: the output is overwritten, never read.
  void run(cudnnHandle_t handle, Pass pass, int algorithm, const void* first, const void* second,
           void* output, void* workspace, std::size_t workspace_bytes) const {
    const float alpha = 1.0f, beta = 0.0f;
    switch (pass) {
      case Pass::Forward:
        LADDER_CUDNN(cudnnConvolutionForward(handle, &alpha, x_, first, w_, second, conv_,
                                             static_cast<cudnnConvolutionFwdAlgo_t>(algorithm), workspace,
                                             workspace_bytes, &beta, y_, output));
        return;
      case Pass::BackwardData:
        LADDER_CUDNN(cudnnConvolutionBackwardData(handle, &alpha, w_, second, y_, first, conv_,
                                                  static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm),
                                                  workspace, workspace_bytes, &beta, x_, output));
        return;
      case Pass::BackwardWeight:
        LADDER_CUDNN(cudnnConvolutionBackwardFilter(handle, &alpha, x_, second, y_, first, conv_,
                                                    static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm),
                                                    workspace, workspace_bytes, &beta, w_, output));
        return;
    }
  }

 private:
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
};

std::string algorithm_name(Pass pass, int algorithm) {
  static const char* const forward[] = {
      "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
      "WINOGRAD",      "WINOGRAD_NONFUSED"};
  static const char* const backward_data[] = {"ALGO_0",     "ALGO_1",   "FFT",
                                              "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* const backward_filter[] = {
      "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  const auto pick = [&](const auto& names) -> std::string {
    const int count = static_cast<int>(std::size(names));
    return algorithm >= 0 && algorithm < count ? names[algorithm] : "ALGO_" + std::to_string(algorithm);
  };
  switch (pass) {
    case Pass::Forward:
      return pick(forward);
    case Pass::BackwardData:
      return pick(backward_data);
    case Pass::BackwardWeight:
      return pick(backward_filter);
  }
  return "?";
}

// The reference's algorithms, most trusted first: plain (implicit) GEMMs in FP32 FMA math, no FFT or
// Winograd, whose rounding differs from a direct sum's.
std::vector<int> reference_algorithms(Pass pass) {
  switch (pass) {
    case Pass::Forward:
      return {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
              CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
    case Pass::BackwardData:
      return {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0};
    case Pass::BackwardWeight:
      return {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3};
  }
  return {};
}

// ---- tensors ----------------------------------------------------------------------------------------------

// A tensor's four sizes in NCHW order ([N, C, H, W] or, for a filter, [K, C/g, R, S]). Stored NHWC it is
// [d0, d2, d3, d1].
struct Dims {
  std::int64_t d0, d1, d2, d3;
  std::size_t count() const { return static_cast<std::size_t>(d0 * d1 * d2 * d3); }
};

Dims x_dims(const Conv2dGeometry& g) { return {g.batch, g.in_channels, g.in_height, g.in_width}; }
Dims w_dims(const Conv2dGeometry& g) {
  return {g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w};
}
Dims y_dims(const Conv2dGeometry& g) { return {g.batch, g.out_channels, g.out_height(), g.out_width()}; }
Dims output_dims(Pass pass, const Conv2dGeometry& g) {
  return pass == Pass::Forward ? y_dims(g) : pass == Pass::BackwardData ? x_dims(g) : w_dims(g);
}

// The rotating set holds x, w and gy; each pass reads two of them, in the ladder's argument order.
enum InputIndex { kX = 0, kW = 1, kGy = 2 };
std::pair<int, int> pass_inputs(Pass pass) {
  switch (pass) {
    case Pass::Forward:
      return {kX, kW};
    case Pass::BackwardData:
      return {kGy, kW};
    case Pass::BackwardWeight:
      return {kGy, kX};
  }
  return {kX, kW};
}

std::vector<float> nchw_to_nhwc(const std::vector<float>& nchw, const Dims& d) {
  std::vector<float> nhwc(nchw.size());
  std::size_t source = 0;
  for (std::int64_t i0 = 0; i0 < d.d0; ++i0)
    for (std::int64_t i1 = 0; i1 < d.d1; ++i1)
      for (std::int64_t i2 = 0; i2 < d.d2; ++i2)
        for (std::int64_t i3 = 0; i3 < d.d3; ++i3)
          nhwc[static_cast<std::size_t>(((i0 * d.d2 + i2) * d.d3 + i3) * d.d1 + i1)] = nchw[source++];
  return nhwc;
}

void nhwc_to_nchw(const float* nhwc, const Dims& d, float* nchw) {
  std::size_t destination = 0;
  for (std::int64_t i0 = 0; i0 < d.d0; ++i0)
    for (std::int64_t i1 = 0; i1 < d.d1; ++i1)
      for (std::int64_t i2 = 0; i2 < d.d2; ++i2)
        for (std::int64_t i3 = 0; i3 < d.d3; ++i3)
          nchw[destination++] = nhwc[static_cast<std::size_t>(((i0 * d.d2 + i2) * d.d3 + i3) * d.d1 + i1)];
}

double flop(const Conv2dGeometry& g) { return 2.0 * static_cast<double>(g.multiply_adds()); }

// ---- options ----------------------------------------------------------------------------------------------

struct Options {
  CommonOptions common;
  std::vector<std::string> models;
  std::vector<std::int64_t> batches;
  std::vector<Pass> passes{Pass::Forward, Pass::BackwardData, Pass::BackwardWeight};
  bool list = false;
};

const char* const kUsage =
    "usage: conv2d_ladder [options]\n"
    "  --models LIST       resnet20,resnet56,vgg_small,vgg11,mobilenet (default: all; --quick: resnet20)\n"
    "  --batches LIST      default 1,32,128,256 (--quick: 128)\n"
    "  --passes LIST       forward,backward_data,backward_weight (default: all)\n"
    "  --list              print the ladder's steps and the layers, and exit\n";

Options parse_options(int argc, char** argv) {
  Options options;
  std::string models, batches;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::printf("%s%s", kUsage, kCommonUsage);
      std::exit(0);
    }
    if (parse_common_flag(argc, argv, i, options.common)) continue;
    if (flag == "--list") {
      options.list = true;
      continue;
    }
    KILN_CHECK(flag == "--models" || flag == "--batches" || flag == "--passes", "unknown option ", flag,
               " (see --help)");
    KILN_CHECK(i + 1 < argc, flag, " needs a value");
    const std::string value = argv[++i];
    if (flag == "--models") {
      models = value;
    } else if (flag == "--batches") {
      batches = value;
    } else {
      options.passes.clear();
      for (const std::string& name : split_list(value)) {
        bool known = false;
        for (Pass pass : kPasses) {
          if (name == conv2d_ladder::pass_name(pass)) {
            options.passes.push_back(pass);
            known = true;
          }
        }
        KILN_CHECK(known, "--passes takes forward, backward_data and backward_weight, not '", name, "'");
      }
    }
  }
  options.models = models.empty()
                       ? (options.common.quick ? std::vector<std::string>{"resnet20"} : zoo_models())
                       : split_list(models);
  for (const std::string& model : options.models)
    KILN_CHECK(std::find(zoo_models().begin(), zoo_models().end(), model) != zoo_models().end(),
               "--models: '", model, "' is not one of resnet20, resnet56, vgg_small, vgg11, mobilenet");
  if (batches.empty()) {
    options.batches =
        options.common.quick ? std::vector<std::int64_t>{128} : std::vector<std::int64_t>{1, 32, 128, 256};
  } else {
    for (const std::string& batch : split_list(batches)) {
      const double value = number_value("--batches", batch);
      KILN_CHECK(value >= 1 && value == std::floor(value) && value <= 65536, "--batches: '", batch,
                 "' is not a batch size");
      options.batches.push_back(static_cast<std::int64_t>(value));
    }
  }
  return options;
}

// ---- rows -------------------------------------------------------------------------------------------------

struct Row {
  Pass pass = Pass::Forward;
  Precision precision = Precision::Fp32;
  Layout layout = Layout::Nchw;
  std::string version;  // the step's name, or "cudnn nhwc IMPLICIT_PRECOMP_GEMM"
  bool vendor = false;
  int algorithm = -1;         // cuDNN's
  int ladder_order = 0;       // the step's place in steps()
  std::string status = "ok";  // "ok", "WRONG", "failed: <why>", "skipped: <why>"
  bool checked = false;
  double error = 0.0;
  bool timed = false;
  Timing timing;
  double tflops = 0.0, percent_of_peak = 0.0, ratio = 0.0;
  bool has_ratio = false;
  bool best_vendor = false;
};

// The reference of one pass: cuDNN FP32 (FMA math, NCHW) on the inputs and on their absolute values.
struct Reference {
  bool available = false;
  std::string algorithm;
  std::vector<float> out, scale;
};

// What one (layer, batch) block's rows share.
struct ShapeContext {
  const Conv2dGeometry& g;
  const Options& options;
  const Peaks& peaks;
  const std::map<Pass, Reference>& references;
  const DeviceBuffer& output;      // max(x, w, y) floats
  std::vector<float>& downloaded;  // room for that on the host
  std::vector<float>& reordered;   // and for an NHWC output put back in NCHW order
};

// Checks `run` on input copy 0 (unless `float_output` is false: cuDNN's bf16 rows), then times it over
// every copy. A ladder step that is WRONG gets no time.
Row measure(const ShapeContext& context, Row row, int copies, const std::function<void(int)>& run,
            bool float_output) {
  context.output.poison();
  run(0);
  LADDER_CUDA(cudaDeviceSynchronize());
  const Reference& reference = context.references.at(row.pass);
  if (!row.vendor && !reference.available) kiln::fail("no cuDNN FP32 reference to check against");
  if (float_output && reference.available) {
    const Dims dims = output_dims(row.pass, context.g);
    const std::size_t count = dims.count();
    context.output.download(context.downloaded.data(), count * sizeof(float));
    const float* nchw = context.downloaded.data();
    if (row.layout == Layout::Nhwc) {
      nhwc_to_nchw(context.downloaded.data(), dims, context.reordered.data());
      nchw = context.reordered.data();
    }
    row.checked = true;
    row.error = max_scaled_error(nchw, reference.out.data(), reference.scale.data(), count);
    if (!(row.error <= tolerance(row.precision))) {
      row.status = "WRONG";
      if (!row.vendor) return row;
    }
  }
  context.output.poison();
  row.timing = time_runs(context.options.common.timing, copies, run);
  row.timed = true;
  row.tflops = flop(context.g) / (row.timing.median_ms * 1e-3) * 1e-12;
  const double peak = peak_tflops(context.peaks, row.precision);
  row.percent_of_peak = peak > 0 ? 100.0 * row.tflops / peak : 0.0;
  return row;
}

// ---- one (layer, batch) -----------------------------------------------------------------------------------

struct RunState {
  std::vector<nlohmann::json> rows;
  // (pass, precision) -> per ResNet layer at batch 128: cuDNN best time / best ladder time, or NaN where no
  // ladder step ran (or none was correct)
  std::map<std::pair<Pass, Precision>, std::vector<std::pair<std::string, double>>> resnet_ratios;
  bool any_wrong_or_failed = false;
  bool device_lost = false;
};

struct Variant {
  bool bf16;
  Layout layout;
};

cudnnMathType_t math_type(Precision precision) {
  return precision == Precision::Fp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
}

// For each pass: cuDNN's FP32 result (FMA math, NCHW) on the inputs and on their absolute values, by the
// first algorithm of reference_algorithms() that takes the convolution. A pass none takes has no reference,
// and its ladder rows fail ("no reference") rather than report an unchecked time.
std::map<Pass, Reference> compute_references(const Cudnn& cudnn, const Conv2dGeometry& g,
                                             const std::vector<Pass>& passes, const std::vector<float>& x,
                                             const std::vector<float>& w, const std::vector<float>& gy,
                                             const DeviceBuffer& output) {
  // [0..2]: x, w, gy; [3..5]: their absolute values (InputIndex order).
  std::vector<DeviceBuffer> tensors;
  for (const bool absolute_values : {false, true}) {
    for (const std::vector<float>* values : {&x, &w, &gy}) {
      tensors.emplace_back(values->size() * sizeof(float));
      tensors.back().upload(absolute_values ? absolute(*values).data() : values->data(),
                            tensors.back().bytes());
    }
  }
  const CudnnConvolution convolution(g, Layout::Nchw, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH);
  std::map<Pass, Reference> references;
  for (Pass pass : passes) {
    Reference& reference = references[pass];
    const auto [first, second] = pass_inputs(pass);
    const std::size_t count = output_dims(pass, g).count();
    for (int algorithm : reference_algorithms(pass)) {
      try {
        const std::size_t bytes = convolution.workspace_bytes(cudnn.get(), pass, algorithm);
        const DeviceBuffer workspace(bytes);
        for (const int offset : {0, 3}) {  // the values, then their absolute values
          convolution.run(
              cudnn.get(), pass, algorithm, tensors[static_cast<std::size_t>(first + offset)].get(),
              tensors[static_cast<std::size_t>(second + offset)].get(), output.get(), workspace.get(), bytes);
          std::vector<float>& destination = offset == 0 ? reference.out : reference.scale;
          destination.resize(count);
          output.download(destination.data(), count * sizeof(float));
        }
      } catch (const CudnnFailure& failure) {
        std::fprintf(stderr, "conv2d_ladder: reference %s %s: %s\n",
                     std::string(conv2d_ladder::pass_name(pass)).c_str(),
                     algorithm_name(pass, algorithm).c_str(), failure.what());
        continue;
      }
      reference.available = true;
      reference.algorithm = algorithm_name(pass, algorithm);
      break;
    }
  }
  return references;
}

void print_header() {
  std::printf("%-20s %-20s %5s %-15s %-5s %-36s %10s %10s %8s %7s %7s  %s\n", "model", "layer", "batch",
              "pass", "prec", "version", "median ms", "min ms", "TFLOP/s", "% peak", "x cuDNN", "check");
}

void print_row(const ConvLayer& layer, std::int64_t batch, const Row& row) {
  std::string check = row.checked ? (row.status == "ok" ? "ok " : row.status + " ") + error_cell(row.error)
                                  : (row.status == "ok" ? "-" : row.status);
  if (row.timed && !row.timing.gated) check += " (ungated)";
  const std::string version = row.version + (row.best_vendor ? " *" : "");
  std::printf("%-20s %-20s %5lld %-15s %-5s %-36s %10s %10s %8s %7s %7s  %s\n", layer.models().c_str(),
              layer.name.c_str(), static_cast<long long>(batch),
              std::string(conv2d_ladder::pass_name(row.pass)).c_str(),
              std::string(precision_name(row.precision)).c_str(), version.c_str(),
              milliseconds_cell(row.timing.median_ms, row.timed).c_str(),
              milliseconds_cell(row.timing.min_ms, row.timed).c_str(), cell(row.tflops, 2, row.timed).c_str(),
              cell(row.percent_of_peak, 1, row.timed).c_str(), cell(row.ratio, 2, row.has_ratio).c_str(),
              check.c_str());
}

nlohmann::json row_json(const ConvLayer& layer, std::int64_t batch, const Row& row) {
  nlohmann::json models = nlohmann::json::object();
  for (const auto& [model, count] : layer.uses) models[model] = count;
  nlohmann::json json = {{"models", models},  // model -> how many of its convolutions have this geometry
                         {"layer", layer.name},
                         {"batch", batch},
                         {"in_channels", layer.in_channels},
                         {"out_channels", layer.out_channels},
                         {"kernel", layer.kernel},
                         {"stride", layer.stride},
                         {"padding", layer.padding},
                         {"groups", layer.groups},
                         {"size", layer.size},
                         {"pass", std::string(conv2d_ladder::pass_name(row.pass))},
                         {"precision", std::string(precision_name(row.precision))},
                         {"layout", std::string(conv2d_ladder::layout_name(row.layout))},
                         {"version", row.version},
                         {"vendor", row.vendor},
                         {"status", row.status}};
  if (row.vendor) {
    json["algorithm"] = row.algorithm;
    json["best_vendor"] = row.best_vendor;
  }
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
  if (row.has_ratio) json["speed_vs_cudnn_best"] = row.ratio;
  return json;
}

void run_shape(const ConvLayer& layer, std::int64_t batch, const Options& options, const Peaks& peaks,
               const DeviceInfo& device, const Cudnn& cudnn, RunState& state) {
  const Conv2dGeometry g = layer.geometry(batch);
  const Dims xd = x_dims(g), wd = w_dims(g), yd = y_dims(g);
  const std::uint64_t seed = options.common.seed * 1000003u + static_cast<std::uint64_t>(batch);
  const std::vector<float> x = random_bf16_exact(xd.count(), seed * 3 + 1);
  const std::vector<float> w = random_bf16_exact(wd.count(), seed * 3 + 2);
  const std::vector<float> gy = random_bf16_exact(yd.count(), seed * 3 + 3);
  const std::size_t largest = std::max({xd.count(), wd.count(), yd.count()});
  const DeviceBuffer output(largest * sizeof(float));
  std::vector<float> downloaded(largest), reordered(largest);
  const std::map<Pass, Reference> references = compute_references(cudnn, g, options.passes, x, w, gy, output);
  const ShapeContext context{g, options, peaks, references, output, downloaded, reordered};

  std::vector<Row> rows;
  const auto record = [&](Row row) {
    if (!row.vendor && row.status != "ok" && row.status.rfind("skipped", 0) != 0)
      state.any_wrong_or_failed = true;
    rows.push_back(std::move(row));
  };
  const auto attempt = [&](Row row, int copies, const std::function<void(int)>& run, bool float_output) {
    std::fprintf(stderr, "conv2d_ladder: %s batch %lld %s %s %s\n", layer.name.c_str(),
                 static_cast<long long>(batch), std::string(conv2d_ladder::pass_name(row.pass)).c_str(),
                 std::string(precision_name(row.precision)).c_str(), row.version.c_str());
    try {
      record(measure(context, row, copies, run, float_output));
    } catch (const CudnnFailure& failure) {
      if (failure.not_supported()) return;  // this algorithm does not take this convolution: no row
      row.status = std::string("failed: ") + failure.what();
      record(row);
      if (!device_still_usable()) state.device_lost = true;
    } catch (const std::exception& error) {
      row.status = std::string("failed: ") + error.what();
      record(row);
      if (!device_still_usable()) state.device_lost = true;
    }
  };

  for (const Variant variant : {Variant{false, Layout::Nchw}, Variant{false, Layout::Nhwc},
                                Variant{true, Layout::Nchw}, Variant{true, Layout::Nhwc}}) {
    std::vector<Precision> precisions;
    for (Precision p : {Precision::Fp32, Precision::Tf32, Precision::Bf16})
      if (wants(options.common, p) && (p == Precision::Bf16) == variant.bf16) precisions.push_back(p);
    if (precisions.empty()) continue;

    // The inputs in this variant's layout and type, in rotating copies.
    const std::size_t element = variant.bf16 ? sizeof(kiln::bfloat16) : sizeof(float);
    const RotatingInputs inputs({xd.count() * element, wd.count() * element, yd.count() * element},
                                device.l2_bytes);
    const std::pair<const std::vector<float>*, Dims> sources[3] = {{&x, xd}, {&w, wd}, {&gy, yd}};
    for (int index = 0; index < 3; ++index) {
      const auto& [values, dims] = sources[index];
      const std::vector<float> ordered =
          variant.layout == Layout::Nhwc ? nchw_to_nhwc(*values, dims) : *values;
      if (variant.bf16) {
        inputs.fill(index, to_bf16(ordered).data(), ordered.size() * element);
      } else {
        inputs.fill(index, ordered.data(), ordered.size() * element);
      }
    }
    inputs.replicate();

    for (Pass pass : options.passes) {
      const auto [first, second] = pass_inputs(pass);
      for (Precision precision : precisions) {
        // cuDNN: every algorithm, each with its own workspace.
        const CudnnConvolution convolution(
            g, variant.layout, variant.bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT, math_type(precision));
        const int algorithms = convolution.algorithm_count(cudnn.get(), pass);
        for (int algorithm = 0; algorithm < algorithms && !state.device_lost; ++algorithm) {
          Row row;
          row.pass = pass;
          row.precision = precision;
          row.layout = variant.layout;
          row.vendor = true;
          row.algorithm = algorithm;
          row.version = "cudnn " + std::string(conv2d_ladder::layout_name(variant.layout)) + " " +
                        algorithm_name(pass, algorithm);
          std::size_t bytes = 0;
          try {
            bytes = convolution.workspace_bytes(cudnn.get(), pass, algorithm);
          } catch (const CudnnFailure& failure) {
            if (failure.not_supported()) continue;
            row.status = std::string("failed: ") + failure.what();
            record(row);
            continue;
          }
          std::size_t free_bytes = 0, total_bytes = 0;
          LADDER_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
          if (bytes > free_bytes / 2) {
            row.status = "skipped: workspace " + cell(mebibytes(bytes), 0) + " MiB";
            record(row);
            continue;
          }
          const DeviceBuffer workspace(bytes);
          attempt(
              row, inputs.copies(),
              [&, pass, algorithm, first = first, second = second](int copy) {
                convolution.run(cudnn.get(), pass, algorithm, inputs.tensor(copy, first),
                                inputs.tensor(copy, second), output.get(), workspace.get(),
                                workspace.bytes());
              },
              !variant.bf16);
        }
        // The ladder's steps for this pass, precision and layout.
        int order = 0;
        for (const conv2d_ladder::Step& step : conv2d_ladder::steps()) {
          ++order;
          if (state.device_lost) break;
          if (step.pass != pass || step.precision != precision || step.layout != variant.layout ||
              !step_selected(options.common, step.name) || !conv2d_ladder::supports(step, g))
            continue;
          Row row;
          row.pass = pass;
          row.precision = precision;
          row.layout = variant.layout;
          row.version = std::string(step.name);
          row.ladder_order = order;
          attempt(
              row, inputs.copies(),
              [&, launch = step.launch, first = first, second = second](int copy) {
                launch(g, inputs.tensor(copy, first), inputs.tensor(copy, second), output.as<float>());
              },
              true);
        }
      }
      if (state.device_lost) break;
    }
    if (state.device_lost) break;
  }

  // Ratios to cuDNN's best (over both layouts), the block in order, the summary's entries.
  std::map<std::pair<Pass, Precision>, double> vendor_best, ladder_best;
  for (const Row& row : rows) {
    // Every timed cuDNN algorithm competes (its check is information, not a verdict on the vendor); a
    // ladder step has a time only when its result was right.
    if (!row.timed) continue;
    auto& best = row.vendor ? vendor_best[{row.pass, row.precision}] : ladder_best[{row.pass, row.precision}];
    if (best == 0.0 || row.timing.median_ms < best) best = row.timing.median_ms;
  }
  for (Row& row : rows) {
    const double best = vendor_best[{row.pass, row.precision}];
    if (row.timed && best > 0) {
      row.ratio = best / row.timing.median_ms;
      row.has_ratio = true;
      row.best_vendor = row.vendor && row.timing.median_ms == best;
    }
  }
  const auto pass_index = [](Pass pass) { return static_cast<int>(pass); };
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    const auto key = [&](const Row& r) {
      return std::make_tuple(pass_index(r.pass), static_cast<int>(r.precision), !r.vendor,
                             r.vendor ? (r.timed ? r.timing.median_ms : INFINITY) : 0.0, r.ladder_order);
    };
    return key(a) < key(b);
  });
  for (const Row& row : rows) {
    print_row(layer, batch, row);
    state.rows.push_back(row_json(layer, batch, row));
  }
  std::printf("\n");
  std::fflush(stdout);

  if (batch == 128 && (layer.used_by("resnet20") || layer.used_by("resnet56"))) {
    for (Pass pass : options.passes) {
      for (Precision precision : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {
        if (!wants(options.common, precision)) continue;
        const double vendor = vendor_best[{pass, precision}], ladder = ladder_best[{pass, precision}];
        state.resnet_ratios[{pass, precision}].emplace_back(layer.name,
                                                            vendor > 0 && ladder > 0 ? vendor / ladder : NAN);
      }
    }
  }
}

// The target line: per pass and precision, the geometric mean over the ResNet-20/56 layers at
// batch 128 of cuDNN best / best ladder step (layers where no ladder step ran are counted, not averaged).
nlohmann::json print_summary(const RunState& state, const Options& options) {
  nlohmann::json summary = nlohmann::json::array();
  if (state.resnet_ratios.empty()) {
    std::printf("summary: needs the ResNet-20/56 layers at batch 128 (--models resnet20 --batches 128)\n");
    return summary;
  }
  std::printf(
      "summary: speed of the best ladder step relative to cuDNN's best algorithm, same pass and precision:\n"
      "geometric mean over the ResNet-20/56 layers at batch 128 of (cuDNN best time / ladder best time);\n"
      "above 1: the ladder is faster; the issue's target is 0.8. (n/m: layers with a ladder step / "
      "layers)\n\n");
  std::printf("%-16s %-18s %-18s %-18s\n", "pass", "fp32", "tf32", "bf16");
  for (Pass pass : options.passes) {
    std::printf("%-16s", std::string(conv2d_ladder::pass_name(pass)).c_str());
    for (Precision precision : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {
      const auto found = state.resnet_ratios.find({pass, precision});
      if (found == state.resnet_ratios.end()) {
        std::printf(" %-18s", "-");
        continue;
      }
      double log_sum = 0.0;
      int measured = 0;
      nlohmann::json layers = nlohmann::json::object();
      for (const auto& [layer, ratio] : found->second) {
        layers[layer] = std::isfinite(ratio) ? nlohmann::json(ratio) : nullptr;
        if (!std::isfinite(ratio)) continue;
        log_sum += std::log(ratio);
        ++measured;
      }
      const int total = static_cast<int>(found->second.size());
      const double mean = measured > 0 ? std::exp(log_sum / measured) : NAN;
      char text[64];
      if (measured > 0)
        std::snprintf(text, sizeof text, "%.2fx (%d/%d)", mean, measured, total);
      else
        std::snprintf(text, sizeof text, "- (0/%d)", total);
      std::printf(" %-18s", text);
      summary.push_back({{"pass", std::string(conv2d_ladder::pass_name(pass))},
                         {"precision", std::string(precision_name(precision))},
                         {"geomean_speed_vs_cudnn_best", measured > 0 ? nlohmann::json(mean) : nullptr},
                         {"layers_with_a_step", measured},
                         {"layers", total},
                         {"per_layer", layers}});
    }
    std::printf("\n");
  }
  return summary;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse_options(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "conv2d_ladder: %s\n", error.what());
    return 2;
  }
  const std::vector<ConvLayer> layers = distinct_layers(options.models);
  if (options.list) {
    for (const conv2d_ladder::Step& step : conv2d_ladder::steps())
      std::printf("%-34s %-15s %-5s %-5s %s%s%s\n", std::string(step.name).c_str(),
                  std::string(conv2d_ladder::pass_name(step.pass)).c_str(),
                  std::string(precision_name(step.precision)).c_str(),
                  std::string(conv2d_ladder::layout_name(step.layout)).c_str(),
                  std::string(step.summary).c_str(),
                  step.requirement.empty() ? "" : "; takes: ", std::string(step.requirement).c_str());
    for (const ConvLayer& layer : layers) {
      std::string uses;
      for (const auto& [model, count] : layer.uses) uses += " " + model + " x" + std::to_string(count);
      std::printf("%-20s%s\n", layer.name.c_str(), uses.c_str());
    }
    return 0;
  }
  if (no_device_to_measure(options.common, "conv2d_ladder")) return 0;

  RunState state;
  nlohmann::json report = {{"program", "conv2d_ladder"}};
  try {
    LADDER_CUDA(cudaSetDevice(0));
    const DeviceInfo device = query_device(kiln::cuda::device_description(0));
    const Cudnn cudnn;
    const Peaks peaks = measure_peaks(options.common.quick);
    const auto cudnn_version = static_cast<long long>(cudnnGetVersion());
    std::printf("conv2d_ladder: %s, %d SMs, L2 %.0f MiB, cuDNN %lld\n", device.description.c_str(),
                device.multiprocessors, mebibytes(device.l2_bytes), cudnn_version);
    std::printf(
        "measured peaks (TFLOP/s): fp32 FFMA %.1f, tf32 mma.sync %.1f, bf16 mma.sync %.1f, bf16 wgmma %.1f\n",
        peaks.fp32_tflops, peaks.tf32_tflops, peaks.bf16_tflops, peaks.bf16_wgmma_tflops);
    std::printf(
        "  (%% peak: bf16 rows of the wgmma peak where there is one, else of mma.sync's; tf32 rows of "
        "mma.sync's, which cuDNN's wgmma may exceed)\n");
    std::printf(
        "timing: median of event-timed samples, %.0f ms per row, inputs rotating over >= 3x L2; "
        "x cuDNN = cuDNN best time / row time; * = cuDNN's best\n\n",
        options.common.timing.budget_ms);
    print_header();
    report["device"] = device.description;
    report["multiprocessors"] = device.multiprocessors;
    report["l2_bytes"] = device.l2_bytes;
    report["cudnn_version"] = cudnn_version;
    report["peaks_tflops"] = {{"fp32_ffma", peaks.fp32_tflops},
                              {"tf32_mma_sync", peaks.tf32_tflops},
                              {"bf16_mma_sync", peaks.bf16_tflops},
                              {"bf16_wgmma", peaks.bf16_wgmma_tflops}};
    report["budget_ms"] = options.common.timing.budget_ms;
    report["quick"] = options.common.quick;
    for (const ConvLayer& layer : layers) {
      for (std::int64_t batch : options.batches) {
        try {
          run_shape(layer, batch, options, peaks, device, cudnn, state);
        } catch (
            const std::exception& error) {  // outside any one row (memory, the reference): the next layer
          std::fprintf(stderr, "conv2d_ladder: %s batch %lld: %s\n", layer.name.c_str(),
                       static_cast<long long>(batch), error.what());
          state.rows.push_back(
              {{"layer", layer.name}, {"batch", batch}, {"status", std::string("failed: ") + error.what()}});
          state.any_wrong_or_failed = true;
          if (!device_still_usable()) state.device_lost = true;
        }
        if (state.device_lost) break;
      }
      if (state.device_lost) break;
    }
    report["summary"] = print_summary(state, options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "conv2d_ladder: %s\n", error.what());
    report["error"] = error.what();
    state.any_wrong_or_failed = true;
  }
  if (state.device_lost) {
    std::fprintf(stderr, "conv2d_ladder: the device is unusable after a failed step; stopped early\n");
    report["error"] = "device unusable after a failed step; stopped early";
  }
  report["results"] = state.rows;
  write_json_report(options.common, report, "conv2d_ladder");
  return state.any_wrong_or_failed || state.device_lost ? 1 : 0;
}
