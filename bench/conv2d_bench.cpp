// conv2d speed in GFLOP/s and % of this machine's measured FP32 peak (bench/support/peak.hpp), per
// direction (forward, backward-data, backward-weight), over the convolution layers of the model zoo at
// CIFAR size (32x32): ResNet-20 (ResNet-56 has the same layer shapes), vgg_small, the MobileNet-style net
// and LeNet-5, plus a few strided layers outside the zoo ("strided"), at batch 1, 32 and 128, on every core
// (compute_threads()). The label is the algorithm dispatch chose (kernels/conv2d/algorithm.cpp), also the
// name's fourth part; with --all-algorithms every algorithm that supports the shape runs too, to check the
// heuristic's choice. With --channels-last the activations are channels-last ([N, H, W, C]; names end in
// /channels_last); an algorithm that does not take the layout itself runs behind dispatch.cpp's conversion to
// NCHW and back, timed with it, and says so in its label. With --bf16 the operands are bfloat16 and each
// layer runs what training's bf16 step runs: the public dispatch (conv2d.hpp), the label naming its path
// (bfloat16_conv2d_path: the AMX tiles, the depthwise-channels kernels on bfloat16 tensors, or the float
// kernels on widened copies); pct_of_peak stays the FP32 peak's. With --cold each iteration takes its
// operands and outputs from the next of enough copies to fill 768 MiB (bench/support/cold_copies.hpp; names
// end in /cold), so they come from memory as a training step's do: the warm runs reuse one set, whose 10-30
// MB of a batch-128 layer the L3 may partly hold.
//
// FLOP per direction = 2 * N * C_out * OH * OW * C_in/groups * KH * KW.
//
//   build/conv2d_bench                                          (everything, a few minutes)
//   build/conv2d_bench --benchmark_filter='resnet.*/128'        (one model at one batch)
//   build/conv2d_bench --all-algorithms --benchmark_filter='resnet.*/128'
//   build/conv2d_bench --channels-last --benchmark_filter='mobilenet.*/128'
//   build/conv2d_bench --bf16 --channels-last --benchmark_filter='resnet.*/128'
//   build/conv2d_bench --cold --all-algorithms --benchmark_filter='backward_weight/resnet.*/128'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "bench/support/aligned_floats.hpp"
#include "bench/support/cold_copies.hpp"
#include "bench/support/peak.hpp"
#include "core/bfloat16.hpp"
#include "core/device.hpp"
#include "kernels/amx/amx.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "models/mobilenet_blocks.hpp"

namespace {

namespace kernels = kiln::kernels;
using kernels::Conv2dDirection;
using kernels::Conv2dGeometry;

struct Layer {
  std::string model;
  std::int64_t in_channels, out_channels, size, kernel, stride, groups;
  bool unpadded = false;  // LeNet-5's layers; the others pad kernel / 2
};

// 3x3 layers pad 1, 1x1 layers pad 0, LeNet-5's 5x5 layers pad 0; `size` is the input's height and width.
std::vector<Layer> zoo_layers() {
  std::vector<Layer> layers = {
      // ResNet-20 / ResNet-56 (models/resnet.cpp): three stages of 16, 32, 64 channels.
      {"resnet20_56", 3, 16, 32, 3, 1, 1},
      {"resnet20_56", 16, 16, 32, 3, 1, 1},
      {"resnet20_56", 16, 32, 32, 3, 2, 1},
      {"resnet20_56", 32, 32, 16, 3, 1, 1},
      {"resnet20_56", 32, 64, 16, 3, 2, 1},
      {"resnet20_56", 64, 64, 8, 3, 1, 1},
      // vgg_small (models/vgg.cpp): 32, 32, pool, 64, 64, pool, 128, 128, pool.
      {"vgg_small", 3, 32, 32, 3, 1, 1},
      {"vgg_small", 32, 32, 32, 3, 1, 1},
      {"vgg_small", 32, 64, 16, 3, 1, 1},
      {"vgg_small", 64, 64, 16, 3, 1, 1},
      {"vgg_small", 64, 128, 8, 3, 1, 1},
      {"vgg_small", 128, 128, 8, 3, 1, 1},
      // MobileNet-style (models/mobilenet.cpp): conv1 is vgg_small's first layer.
      // LeNet-5 (models/lenet.cpp): 5x5, unpadded, a 2x2 max-pool between.
      {"lenet5", 3, 6, 32, 5, 1, 1, true},
      {"lenet5", 6, 16, 14, 5, 1, 1, true},
      // Strided layers outside the zoo, whose weight gradients Winograd does not take (algorithm.cpp, rule
      // 7): an ImageNet-style 7x7 stem at 64x64, a 5x5 layer, a 3x3 at stride 3, one with 8 input channels.
      {"strided", 3, 64, 64, 7, 2, 1},
      {"strided", 32, 64, 32, 5, 2, 1},
      {"strided", 16, 32, 33, 3, 3, 1},
      {"strided", 8, 16, 32, 3, 2, 1},
  };
  // Its 13 depthwise-separable blocks: depthwise 3x3 (stride s) then pointwise 1x1, distinct shapes once.
  // (models/mobilenet_blocks.hpp's tables, after the 32-channel stem at 32x32.)
  std::set<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t>> seen;
  std::int64_t channels = kiln::models::kMobileNetStemChannels, size = 32;
  for (const auto& [out_channels, stride] : kiln::models::kMobileNetBlocks) {
    if (seen.insert({channels, channels, size, 3, stride}).second) {
      layers.push_back({"mobilenet", channels, channels, size, 3, stride, channels});
    }
    size = (size + 2 - 3) / stride + 1;
    if (seen.insert({channels, out_channels, size, 1, 1}).second) {
      layers.push_back({"mobilenet", channels, out_channels, size, 1, 1, 1});
    }
    channels = out_channels;
  }
  // MobileNetV2 (models/mobilenet_v2.cpp): each inverted residual block's expansion 1x1 (when t > 1),
  // depthwise 3x3 (stride s) and projection 1x1, distinct shapes once.
  channels = kiln::models::kMobileNetStemChannels, size = 32;
  for (const kiln::models::InvertedStage& stage : kiln::models::kMobileNetV2Stages) {
    for (std::int64_t i = 0; i < stage.repeats; ++i) {
      const std::int64_t hidden = channels * stage.expansion, stride = i == 0 ? stage.stride : 1;
      if (stage.expansion > 1 && seen.insert({channels, hidden, size, 1, 1}).second)
        layers.push_back({"mobilenet_v2", channels, hidden, size, 1, 1, 1});
      if (seen.insert({hidden, hidden, size, 3, stride}).second)
        layers.push_back({"mobilenet_v2", hidden, hidden, size, 3, stride, hidden});
      size = (size + 2 - 3) / stride + 1;
      if (seen.insert({hidden, stage.channels, size, 1, 1}).second)
        layers.push_back({"mobilenet_v2", hidden, stage.channels, size, 1, 1, 1});
      channels = stage.channels;
    }
  }
  return layers;
}

Conv2dGeometry geometry_of(const Layer& layer, std::int64_t batch) {
  Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = layer.in_channels;
  g.out_channels = layer.out_channels;
  g.in_height = g.in_width = layer.size;
  g.kernel_h = g.kernel_w = layer.kernel;
  g.stride_h = g.stride_w = layer.stride;
  g.pad_h = g.pad_w = layer.unpadded ? 0 : layer.kernel / 2;
  g.groups = layer.groups;
  return g;
}

kiln::bench::AlignedFloats random_floats(std::int64_t count) {
  std::mt19937 engine(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  kiln::bench::AlignedFloats values(static_cast<std::size_t>(count));
  for (float& v : values) v = uniform(engine);
  return values;
}

using Bfloat16s = std::vector<kiln::bfloat16, kiln::bench::StorageAlignedAllocator<kiln::bfloat16>>;

// A convolution's operands (random, -1 to 1) and outputs, in float or bfloat16.
template <typename T>
struct ConvBuffers {
  using Values = std::conditional_t<std::is_same_v<T, float>, kiln::bench::AlignedFloats, Bfloat16s>;
  explicit ConvBuffers(const Conv2dGeometry& g)
      : x(random_values(g.batch * g.in_channels * g.in_height * g.in_width)),
        w(random_values(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w)),
        gy(random_values(g.batch * g.out_channels * g.out_height() * g.out_width())),
        y(gy.size()),
        gx(x.size()),
        gw(w.size()) {}
  static Values random_values(std::int64_t count) {
    const kiln::bench::AlignedFloats values = random_floats(count);
    return Values(values.begin(), values.end());
  }
  Values x, w, gy, y, gx, gw;
  double bytes() const {
    return static_cast<double>((x.size() + gx.size() + w.size() + gw.size() + gy.size() + y.size()) *
                               sizeof(T));
  }
};

// One set of buffers (warm), or cold_copies' worth of copies of it, handed out in turn.
template <typename T>
class BufferSets {
 public:
  BufferSets(const Conv2dGeometry& g, bool cold) : sets_(1, ConvBuffers<T>(g)) {
    if (cold) sets_.resize(kiln::bench::cold_copies(sets_.front().bytes()), sets_.front());
  }
  ConvBuffers<T>& next() { return sets_[next_++ % sets_.size()]; }

 private:
  std::vector<ConvBuffers<T>> sets_;
  std::size_t next_ = 0;
};

// GFLOP/s and % of the FP32 peak, from the direction's FLOP (the top of the file).
void report_rate(benchmark::State& state, const Conv2dGeometry& g) {
  const double gflop = 2.0 * static_cast<double>(g.multiply_adds()) * 1e-9;
  const double peak = kiln::bench::fp32_peak_gflops(kernels::compute_threads());
  state.counters["GFLOP"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_of_peak"] =
      benchmark::Counter(gflop * 100.0 / peak, benchmark::Counter::kIsIterationInvariantRate);
}

void run_conv(benchmark::State& state, Conv2dGeometry g, Conv2dDirection direction,
              kernels::Conv2dAlgorithm algorithm, bool cold) {
  BufferSets<float> sets(g, cold);
  for (auto _ : state) {
    ConvBuffers<float>& b = sets.next();
    switch (direction) {
      case Conv2dDirection::Forward:
        kernels::conv2d_forward_using(algorithm, g, b.x.data(), b.w.data(), nullptr, b.y.data());
        break;
      case Conv2dDirection::BackwardData:
        kernels::conv2d_backward_data_using(algorithm, g, b.gy.data(), b.w.data(), b.gx.data());
        break;
      case Conv2dDirection::BackwardWeight:
        kernels::conv2d_backward_weight_using(algorithm, g, b.gy.data(), b.x.data(), b.gw.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  report_rate(state, g);
  const bool chosen = algorithm == kernels::choose_conv2d_algorithm(g, direction, kernels::cpu_level());
  const bool converts = g.channels_last && !kernels::conv2d_algorithm_takes_channels_last(algorithm);
  state.SetLabel(std::string(kernels::conv2d_algorithm_name(algorithm)) + (chosen ? " (chosen)" : "") +
                 (converts ? " (through NCHW)" : ""));
}

// The bfloat16 convolution as training's bf16 step calls it: the public dispatch on the CPU.
void run_conv_bf16(benchmark::State& state, Conv2dGeometry g, Conv2dDirection direction, bool cold) {
  using kiln::bfloat16;
  BufferSets<bfloat16> sets(g, cold);
  const kiln::Device cpu = kiln::Device::cpu();
  for (auto _ : state) {
    ConvBuffers<bfloat16>& b = sets.next();
    switch (direction) {
      case Conv2dDirection::Forward:
        kernels::conv2d_forward<bfloat16>(cpu, g, b.x.data(), b.w.data(), nullptr, b.y.data());
        break;
      case Conv2dDirection::BackwardData:
        kernels::conv2d_backward_data<bfloat16>(cpu, g, b.gy.data(), b.w.data(), b.gx.data());
        break;
      case Conv2dDirection::BackwardWeight:
        kernels::conv2d_backward_weight<bfloat16>(cpu, g, b.gy.data(), b.x.data(), b.gw.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  report_rate(state, g);
  state.SetLabel(kernels::bfloat16_conv2d_path_name(kernels::bfloat16_conv2d_path(g, direction)));
}

std::string layer_name(const Layer& layer) {
  return layer.model + "/" + (layer.groups > 1 ? "dw" : "") + std::to_string(layer.in_channels) + "->" +
         std::to_string(layer.out_channels) + "_k" + std::to_string(layer.kernel) + "s" +
         std::to_string(layer.stride) + "_at" + std::to_string(layer.size);
}

constexpr kernels::Conv2dAlgorithm kAlgorithms[] = {kernels::Conv2dAlgorithm::Reference,
                                                    kernels::Conv2dAlgorithm::Im2colGemm,
                                                    kernels::Conv2dAlgorithm::Pointwise,
                                                    kernels::Conv2dAlgorithm::Depthwise,
                                                    kernels::Conv2dAlgorithm::Winograd2x2,
                                                    kernels::Conv2dAlgorithm::Winograd4x4,
                                                    kernels::Conv2dAlgorithm::Direct,
                                                    kernels::Conv2dAlgorithm::DirectChannels,
                                                    kernels::Conv2dAlgorithm::DepthwiseChannels,
                                                    kernels::Conv2dAlgorithm::UnrolledGemm,
                                                    kernels::Conv2dAlgorithm::TapGemm};

// Removes `flag` from argv (Google Benchmark rejects flags it does not know); true if present.
bool take_flag(int& argc, char** argv, const std::string& flag) {
  bool found = false;
  int kept = 0;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == flag) {
      found = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  const bool all_algorithms = take_flag(argc, argv, "--all-algorithms");
  const bool channels_last = take_flag(argc, argv, "--channels-last");
  const bool bf16 = take_flag(argc, argv, "--bf16");
  const bool cold = take_flag(argc, argv, "--cold");
  const std::string suffix = std::string(channels_last ? "/channels_last" : "") + (cold ? "/cold" : "");
  benchmark::Initialize(&argc, argv);
  const kernels::CpuLevel level = kernels::cpu_level();
  for (const Layer& layer : zoo_layers()) {
    for (Conv2dDirection direction :
         {Conv2dDirection::Forward, Conv2dDirection::BackwardData, Conv2dDirection::BackwardWeight}) {
      for (std::int64_t batch : {1, 32, 128}) {
        Conv2dGeometry g = geometry_of(layer, batch);
        g.channels_last = channels_last;
        if (bf16) {
          const std::string name = std::string(kernels::conv2d_direction_name(direction)) + "/" +
                                   layer_name(layer) + "/bf16/" + std::to_string(batch) + suffix;
          benchmark::RegisterBenchmark(name.c_str(), run_conv_bf16, g, direction, cold)
              ->MinTime(0.05)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
          continue;
        }
        const kernels::Conv2dAlgorithm chosen = kernels::choose_conv2d_algorithm(g, direction, level);
        for (kernels::Conv2dAlgorithm algorithm : kAlgorithms) {
          const bool wanted = algorithm == chosen || (all_algorithms && algorithm != kernels::Conv2dAlgorithm::Reference &&
                                                      kernels::conv2d_algorithm_supports(algorithm, g, direction, level));
          if (!wanted) continue;
          const std::string name =
              std::string(kernels::conv2d_direction_name(direction)) + "/" + layer_name(layer) + "/" +
              std::string(kernels::conv2d_algorithm_name(algorithm)) + "/" + std::to_string(batch) + suffix;
          benchmark::RegisterBenchmark(name.c_str(), run_conv, g, direction, algorithm, cold)
              ->MinTime(0.05)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
