// int8 inference speed against float32, in two views:
//
//   layer:   each ResNet-20 / vgg_small 3x3 convolution shape (CIFAR size), the int8 kernel (VNNI where
//            the CPU has it: kernels/int8/) against the float32 kernel dispatch picks for it
//            (kernels/conv2d/), both forward only, both on every core. Counter GOP/s counts a
//            multiply-add as 2 operations, so the two numbers compare directly.
//   network: a whole zoo model, float32 (layers/, eval mode) against its int8 version (quant/), random
//            weights with batch-norm statistics moved off the identity, calibrated on 32 random images.
//
//   build/int8_bench                                      (everything, about a minute)
//   build/int8_bench --benchmark_filter='network'          (the whole-model comparison)
//
// The ratio int8 / float32 of each pair is the speed-up `kiln quantize` reports for a trained model.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/autograd.hpp"
#include "core/generator.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/int8/int8_conv.hpp"
#include "kernels/parallel.hpp"
#include "models/architecture.hpp"
#include "quant/calibration.hpp"
#include "quant/inference_program.hpp"
#include "quant/quantized_model.hpp"

namespace {

namespace kernels = kiln::kernels;

struct Layer {
  const char* model;
  std::int64_t in_channels, out_channels, size, stride;
};

// 3x3, pad 1; `size` is the input's height and width.
const std::vector<Layer> kLayers = {
    {"resnet20", 16, 16, 32, 1},  {"resnet20", 16, 32, 32, 2},   {"resnet20", 32, 32, 16, 1},
    {"resnet20", 32, 64, 16, 2},  {"resnet20", 64, 64, 8, 1},    {"vgg_small", 32, 32, 32, 1},
    {"vgg_small", 64, 64, 16, 1}, {"vgg_small", 128, 128, 8, 1},
};

double operations(const Layer& l, std::int64_t batch) {
  const std::int64_t out = (l.size - 1) / l.stride + 1;
  return 2.0 * static_cast<double>(batch * l.out_channels * out * out * l.in_channels * 9);
}

void int8_layer(benchmark::State& state, Layer l) {
  const std::int64_t batch = state.range(0);
  const kernels::Int8ConvGeometry g{.batch = batch,
                                    .padded_height = l.size + 2,
                                    .padded_width = l.size + 2,
                                    .in_channel_stride = l.in_channels,
                                    .out_channels = l.out_channels,
                                    .kernel_h = 3,
                                    .kernel_w = 3,
                                    .stride = l.stride};
  std::mt19937 engine(1);
  std::vector<std::uint8_t> x(
      static_cast<std::size_t>(batch * g.padded_height * g.padded_width * l.in_channels));
  for (auto& v : x) v = static_cast<std::uint8_t>(engine());
  std::vector<std::int8_t> w(static_cast<std::size_t>(l.out_channels * 9 * l.in_channels)), packed;
  for (auto& v : w) v = static_cast<std::int8_t>(engine() % 255 - 127);
  packed.resize(static_cast<std::size_t>(l.out_channels / 16 * g.packed_block_bytes()));
  kernels::pack_int8_conv_weights(g, l.out_channels, l.in_channels, w.data(), packed.data());
  std::vector<float> multiplier(static_cast<std::size_t>(l.out_channels), 1e-3f),
      offset(multiplier.size(), 3.0f);
  kernels::Int8Epilogue e = kernels::int8_bounds_u8(0, true);
  e.multiplier = multiplier.data();
  e.offset = offset.data();
  std::vector<std::uint8_t> y(static_cast<std::size_t>(g.out_pixels() * l.out_channels));
  for (auto _ : state) {
    kernels::int8_conv2d(g, x.data(), packed.data(), e, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOP/s"] = benchmark::Counter(
      operations(l, batch), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(kernels::int8_conv2d_uses_vnni() ? "int8 vnni" : "int8 reference");
}

void float_layer(benchmark::State& state, Layer l) {
  const std::int64_t batch = state.range(0);
  const kernels::Conv2dGeometry g{.batch = batch,
                                  .in_channels = l.in_channels,
                                  .in_height = l.size,
                                  .in_width = l.size,
                                  .out_channels = l.out_channels,
                                  .kernel_h = 3,
                                  .kernel_w = 3,
                                  .stride_h = l.stride,
                                  .stride_w = l.stride,
                                  .pad_h = 1,
                                  .pad_w = 1};
  std::mt19937 engine(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(batch * l.in_channels * l.size * l.size));
  std::vector<float> w(static_cast<std::size_t>(l.out_channels * l.in_channels * 9));
  for (auto& v : x) v = uniform(engine);
  for (auto& v : w) v = uniform(engine);
  std::vector<float> bias(static_cast<std::size_t>(l.out_channels), 0.0f);
  std::vector<float> y(static_cast<std::size_t>(batch * l.out_channels * g.out_height() * g.out_width()));
  for (auto _ : state) {
    kernels::conv2d_forward<float>(kiln::Device::cpu(), g, x.data(), w.data(), bias.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOP/s"] = benchmark::Counter(
      operations(l, batch), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel("float32");
}

// A zoo model and its int8 version, built once per (model) and shared by both benchmarks.
struct Network {
  kiln::layers::ModulePtr model;
  kiln::quant::QuantizedModel int8;
};

Network& network(const std::string& name) {
  static std::map<std::string, Network> cache;
  auto found = cache.find(name);
  if (found != cache.end()) return found->second;
  kiln::Generator generator(7);
  Network net;
  net.model = kiln::models::build_model({.name = name}, generator);
  kiln::NoGradGuard no_grad;
  net.model->train(true);
  (*net.model)(kiln::Tensor::randn({32, 3, 32, 32}, kiln::DType::Float32, &generator));
  net.model->eval();
  const kiln::quant::InferenceProgram program = kiln::quant::lower_for_inference(*net.model, {3, 32, 32});
  kiln::quant::Calibrator calibrator(program);
  calibrator.observe(kiln::Tensor::randn({32, 3, 32, 32}, kiln::DType::Float32, &generator));
  net.int8 = kiln::quant::QuantizedModel::quantize(program, calibrator.ranges());
  return cache.emplace(name, std::move(net)).first->second;
}

void network_inference(benchmark::State& state, std::string name, bool int8) {
  Network& net = network(name);
  const std::int64_t batch = state.range(0);
  kiln::Generator generator(9);
  const kiln::Tensor x = kiln::Tensor::randn({batch, 3, 32, 32}, kiln::DType::Float32, &generator);
  kiln::NoGradGuard no_grad;
  for (auto _ : state) {
    const kiln::Tensor logits = int8 ? net.int8.forward(x) : (*net.model)(x);
    benchmark::DoNotOptimize(logits.data<float>());
  }
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(int8 ? (kernels::int8_conv2d_uses_vnni() ? "int8 vnni" : "int8 reference") : "float32");
}

void register_all() {
  for (const Layer& l : kLayers) {
    const std::string name = std::string("layer/") + l.model + "/" + std::to_string(l.in_channels) + "-" +
                             std::to_string(l.out_channels) + "/" + std::to_string(l.size) + "x" +
                             std::to_string(l.size) + "/s" + std::to_string(l.stride);
    benchmark::RegisterBenchmark((name + "/float32").c_str(), float_layer, l)
        ->Arg(32)
        ->Arg(128)
        ->UseRealTime();
    benchmark::RegisterBenchmark((name + "/int8").c_str(), int8_layer, l)->Arg(32)->Arg(128)->UseRealTime();
  }
  for (const char* model : {"resnet20", "vgg_small", "mobilenet", "mobilenet_v2"}) {
    for (const bool int8 : {false, true}) {
      benchmark::RegisterBenchmark((std::string("network/") + model + (int8 ? "/int8" : "/float32")).c_str(),
                                   network_inference, std::string(model), int8)
          ->Arg(1)
          ->Arg(32)
          ->Arg(128)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
