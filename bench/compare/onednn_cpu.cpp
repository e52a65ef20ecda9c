// oneDNN's side of the CPU comparison (scripts/compare-cpu.sh): the same convolutions (ResNet-20's and
// the other layers of shapes.hpp) and SGEMMs that bench/compare/kiln_cpu.cpp times, through oneDNN 2.x,
// printed as one JSON object on stdout in the same form (progress goes to stderr).
//
//   ./build/compare_onednn_cpu [--threads 2] [--batch 128] [--warmup 1] [--reps 10] [--budget 2]
//
// Each convolution is timed in two memory layouts:
//   "nchw"     activations nchw and weights oihw, the layouts kiln computes in: like for like.
//   "blocked"  format `any`: oneDNN picks its preferred layouts (on AVX-512, channels blocked by 16,
//              nChw16c), as a framework built on oneDNN keeps its tensors. Converting into those layouts
//              (reorders) happens once, before timing, and is not counted.
// A primitive is built as oneDNN 2.x asks: operation descriptor -> primitive descriptor (which chooses
// the implementation; "impl" in the JSON names it) -> primitive. Backward primitives take the forward
// primitive descriptor as a hint. oneDNN runs on OpenMP here, so omp_set_num_threads sets its threads.
#include <omp.h>

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/compare/options.hpp"
#include "bench/compare/shapes.hpp"

namespace {

using namespace kiln::bench::compare;
using dnnl::memory;
using Tag = memory::format_tag;

std::vector<float> random_floats(std::int64_t count, std::mt19937& generator) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& value : values) value = uniform(generator);
  return values;
}

// Memory in the layout `desc` holding random values: written in the plain layout `plain_tag`, then
// reordered into `desc` (a copy when it is plain too), so a blocked layout's padding holds the zeros
// oneDNN expects there.
memory random_memory(const memory::desc& desc, Tag plain_tag, const dnnl::engine& engine,
                     dnnl::stream& stream, std::mt19937& generator) {
  const memory::desc plain_desc(desc.dims(), memory::data_type::f32, plain_tag);
  std::vector<float> values =
      random_floats(static_cast<std::int64_t>(plain_desc.get_size() / sizeof(float)), generator);
  memory plain(plain_desc, engine, values.data());
  memory laid_out(desc, engine);
  dnnl::reorder(plain, laid_out).execute(stream, plain, laid_out);
  stream.wait();
  return laid_out;
}

// Times one primitive on its arguments; returns the JSON row.
nlohmann::json time_primitive(const ConvShape& shape, const char* direction, const char* layout,
                              const std::string& implementation, dnnl::primitive primitive,
                              const std::unordered_map<int, memory>& arguments, dnnl::stream& stream,
                              const CompareOptions& options) {
  const Timing timing = time_median(options.timing, [&] {
    primitive.execute(stream, arguments);
    stream.wait();
  });
  std::fprintf(stderr, "onednn: conv %-26s %-15s %-7s %10.3f ms  (%s)\n", shape.name.c_str(), direction,
               layout, timing.median_ms, implementation.c_str());
  return {{"kind", "conv"},
          {"shape", shape.name},
          {"family", shape.family},
          {"count", shape.count},
          {"direction", direction},
          {"layout", layout},
          {"ms", timing.median_ms},
          {"min_ms", timing.min_ms},
          {"gflops", shape.flops(options.batch) / timing.median_ms * 1e-6},
          {"reps", timing.reps},
          {"impl", implementation}};
}

// Forward (training), backward-data and backward-weight of one convolution in one layout.
nlohmann::json time_conv_directions(const ConvShape& shape, bool blocked, const CompareOptions& options,
                                    const dnnl::engine& engine, dnnl::stream& stream,
                                    std::mt19937& generator) {
  const std::int64_t n = options.batch, out_size = shape.out_size(), k = shape.kernel;
  const memory::dims src_dims{n, shape.in_channels, shape.in_size, shape.in_size};
  const memory::dims dst_dims{n, shape.out_channels, out_size, out_size};
  // Grouped weights are 5-d in oneDNN, [groups, C_out / groups, C_in / groups, KH, KW]: the same floats as
  // kiln's [C_out, C_in / groups, KH, KW].
  const bool grouped = shape.groups > 1;
  const memory::dims weight_dims = grouped ? memory::dims{shape.groups, shape.out_channels / shape.groups,
                                                          shape.in_channels / shape.groups, k, k}
                                           : memory::dims{shape.out_channels, shape.in_channels, k, k};
  const Tag plain_weights = grouped ? Tag::goihw : Tag::oihw;
  // oneDNN counts dilation from 0 (no gaps between taps), kiln and PyTorch from 1.
  const memory::dims strides{shape.stride, shape.stride}, dilates{shape.dilation - 1, shape.dilation - 1},
      padding{shape.padding, shape.padding};
  const auto f32 = memory::data_type::f32;
  const memory::desc src_md(src_dims, f32, blocked ? Tag::any : Tag::nchw);
  const memory::desc weight_md(weight_dims, f32, blocked ? Tag::any : plain_weights);
  const memory::desc dst_md(dst_dims, f32, blocked ? Tag::any : Tag::nchw);
  const char* layout = blocked ? "blocked" : "nchw";
  const auto direct = dnnl::algorithm::convolution_direct;

  nlohmann::json rows = nlohmann::json::array();

  const dnnl::convolution_forward::primitive_desc forward_pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, direct, src_md, weight_md, dst_md,
                                      strides, dilates, padding, padding),
      engine);
  {
    const memory src = random_memory(forward_pd.src_desc(), Tag::nchw, engine, stream, generator);
    const memory weights = random_memory(forward_pd.weights_desc(), plain_weights, engine, stream, generator);
    const memory dst(forward_pd.dst_desc(), engine);
    rows.push_back(time_primitive(
        shape, "forward", layout, forward_pd.impl_info_str(), dnnl::convolution_forward(forward_pd),
        {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}}, stream, options));
  }
  {
    const dnnl::convolution_backward_data::primitive_desc pd(
        dnnl::convolution_backward_data::desc(direct, src_md, weight_md, dst_md, strides, dilates, padding,
                                              padding),
        engine, forward_pd);
    const memory diff_dst = random_memory(pd.diff_dst_desc(), Tag::nchw, engine, stream, generator);
    const memory weights = random_memory(pd.weights_desc(), plain_weights, engine, stream, generator);
    const memory diff_src(pd.diff_src_desc(), engine);
    rows.push_back(time_primitive(
        shape, "backward_data", layout, pd.impl_info_str(), dnnl::convolution_backward_data(pd),
        {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diff_src}}, stream,
        options));
  }
  {
    const dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(direct, src_md, weight_md, dst_md, strides, dilates, padding,
                                                 padding),
        engine, forward_pd);
    const memory src = random_memory(pd.src_desc(), Tag::nchw, engine, stream, generator);
    const memory diff_dst = random_memory(pd.diff_dst_desc(), Tag::nchw, engine, stream, generator);
    const memory diff_weights(pd.diff_weights_desc(), engine);
    rows.push_back(time_primitive(
        shape, "backward_weight", layout, pd.impl_info_str(), dnnl::convolution_backward_weights(pd),
        {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_weights}}, stream,
        options));
  }
  return rows;
}

nlohmann::json time_gemm(const GemmShape& shape, const CompareOptions& options, std::mt19937& generator) {
  const std::vector<float> a = random_floats(shape.m * shape.k, generator);
  const std::vector<float> b = random_floats(shape.k * shape.n, generator);
  std::vector<float> c(static_cast<std::size_t>(shape.m * shape.n));
  const Timing timing = time_median(options.timing, [&] {
    // Row-major, like kiln's gemm: C[M, N] = A[M, K] B[K, N].
    const dnnl_status_t status = dnnl_sgemm('N', 'N', shape.m, shape.n, shape.k, 1.0f, a.data(), shape.k,
                                            b.data(), shape.n, 0.0f, c.data(), shape.n);
    if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed on " + shape.name);
  });
  std::fprintf(stderr, "onednn: sgemm %-22s %10.3f ms\n", shape.name.c_str(), timing.median_ms);
  return {{"kind", "gemm"},
          {"shape", shape.name},
          {"ms", timing.median_ms},
          {"min_ms", timing.min_ms},
          {"gflops", shape.flops() / timing.median_ms * 1e-6},
          {"reps", timing.reps}};
}

}  // namespace

int main(int argc, char** argv) try {
  const CompareOptions options = parse_options(argc, argv);
  omp_set_num_threads(options.threads);
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  std::mt19937 generator(0);

  nlohmann::json results = nlohmann::json::array();
  for (const bool blocked : {false, true}) {
    for (const ConvShape& shape : conv_shapes(options.image_size)) {
      for (nlohmann::json& row : time_conv_directions(shape, blocked, options, engine, stream, generator)) {
        results.push_back(std::move(row));
      }
    }
  }
  for (const GemmShape& shape : gemm_shapes()) results.push_back(time_gemm(shape, options, generator));

  const dnnl_version_t* version = dnnl_version();
  const nlohmann::json report = {
      {"program", "onednn"},
      {"version", std::to_string(version->major) + "." + std::to_string(version->minor) + "." +
                      std::to_string(version->patch)},
      {"threads", omp_get_max_threads()},
      {"batch", options.batch},
      {"image_size", options.image_size},
      {"results", results}};
  std::printf("%s\n", report.dump().c_str());
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "compare_onednn_cpu: %s\n", error.what());
  return 1;
}
