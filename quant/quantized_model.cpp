#include "quant/quantized_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "core/error.hpp"
#include "kernels/int8/int8_pool.hpp"
#include "train/checkpoint.hpp"

namespace kiln::quant {
namespace {

using kernels::Int8ConvGeometry;
using kernels::Int8Epilogue;
using kernels::kInt8ChannelBlock;
using kernels::kInt8ChannelQuad;
using kernels::round_up_to_multiple;

bool has_weights(StepKind kind) { return kind == StepKind::Conv || kind == StepKind::Linear; }

// Pools keep their input's channel layout; every other step writes channels of its own.
bool is_pool(StepKind kind) {
  return kind == StepKind::MaxPool || kind == StepKind::AvgPool || kind == StepKind::GlobalAvgPool;
}

const char* kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::Conv:
      return "conv";
    case StepKind::Linear:
      return "linear";
    case StepKind::MaxPool:
      return "max_pool";
    case StepKind::AvgPool:
      return "avg_pool";
    case StepKind::GlobalAvgPool:
      return "global_avg_pool";
    case StepKind::PadShortcut:
      return "pad_shortcut";
  }
  return "unknown";
}

StepKind kind_named(const std::string& name, const std::filesystem::path& path) {
  for (const StepKind kind : {StepKind::Conv, StepKind::Linear, StepKind::MaxPool, StepKind::AvgPool,
                              StepKind::GlobalAvgPool, StepKind::PadShortcut}) {
    if (name == kind_name(kind)) return kind;
  }
  fail("int8 model ", path.string(), ": unknown step kind '", name, "'");
}

// w [out][channels][taps] -> [out][taps][row], row >= channels, the channels from `channels` to `row` zero:
// the weights of each tap (kernel position, or input pixel of a Linear) made adjacent, as channels-last
// activations need.
std::vector<std::int8_t> channels_last(const std::vector<std::int8_t>& w, std::int64_t out,
                                       std::int64_t channels, std::int64_t taps, std::int64_t row) {
  std::vector<std::int8_t> moved(static_cast<std::size_t>(out * taps * row), 0);
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t t = 0; t < taps; ++t)
        moved[static_cast<std::size_t>((o * taps + t) * row + c)] =
            w[static_cast<std::size_t>((o * channels + c) * taps + t)];
    }
  }
  return moved;
}

bool is_depthwise(const QuantizedStep& step) { return step.kind == StepKind::Conv && step.groups > 1; }

}  // namespace

QuantizedModel QuantizedModel::quantize(const InferenceProgram& program,
                                        const std::vector<ValueRange>& ranges) {
  KILN_CHECK(ranges.size() == program.values.size(), "quantize: ", ranges.size(), " ranges for ",
             program.values.size(), " values");
  QuantizedModel model;
  model.output_ = program.output;
  for (std::size_t i = 0; i < program.values.size(); ++i) {
    QuantizedValue value;
    value.shape = program.values[i];
    if (!ranges[i].empty()) value.quantization = AffineQuantization::covering(ranges[i].low, ranges[i].high);
    model.values_.push_back(value);
  }
  for (const Step& step : program.steps) {
    QuantizedStep q;
    q.kind = step.kind, q.name = step.name;
    q.input = step.input, q.output = step.output, q.residual = step.residual;
    q.stride = step.stride, q.padding = step.padding, q.dilation = step.dilation, q.groups = step.groups;
    q.relu = step.relu, q.pool = step.pool, q.channels_before = step.channels_before;
    q.relu_upper = static_cast<float>(step.relu_upper);
    if (has_weights(step.kind)) {
      q.weight_shape = step.weight.shape().dims();
      q.kernel = step.kind == StepKind::Conv ? q.weight_shape[2] : 1;
      q.weights = quantize_per_channel(step.weight.contiguous().to_vector<float>(), q.weight_shape[0]);
      q.bias = step.bias;
    } else {
      model.values_[static_cast<std::size_t>(q.output)].quantization =
          model.values_[static_cast<std::size_t>(q.input)].quantization;
    }
    model.steps_.push_back(std::move(q));
  }
  model.prepare();
  return model;
}

void QuantizedModel::prepare() {
  // Channel strides: the image's rounds up to 4 (one VNNI lane), a pool's is its input's, and every step
  // that writes new channels (convolution, Linear, the shortcut's wider output) rounds up to 16.
  values_.front().channel_stride = round_up_to_multiple(values_.front().shape.channels, kInt8ChannelQuad);
  for (QuantizedStep& step : steps_) {
    const QuantizedValue& in = values_[static_cast<std::size_t>(step.input)];
    QuantizedValue& out = values_[static_cast<std::size_t>(step.output)];
    out.channel_stride =
        is_pool(step.kind) ? in.channel_stride : round_up_to_multiple(out.shape.channels, kInt8ChannelBlock);
    if (has_weights(step.kind)) {
      prepare_weights(step, in, out);
      prepare_epilogue(step, in, out);
    }
  }
  buffers_.assign(values_.size(), {});
}

void QuantizedModel::prepare_weights(QuantizedStep& step, const QuantizedValue& in,
                                     const QuantizedValue& out) {
  // The kernel's weights, channels last, from the stored layout (channels_last above).
  const std::int64_t out_channels = out.shape.channels, k = step.kernel;
  const std::vector<std::int8_t>& w = step.weights.values;
  if (is_depthwise(step)) {
    KILN_CHECK(in.channel_stride == out.channel_stride, "int8 model: depthwise step '", step.name,
               "' reads a value whose channel stride differs from its output's");
    step.kernel_weights = channels_last(w, 1, out_channels, k * k, out.channel_stride);  // [KH * KW][CS]
    return;
  }
  // A convolution: [out][C][KH * KW] -> [out][KH * KW][C], packed for CS-strided pixels. A Linear reads its
  // input as one pixel whose channels are the value's [H][W][CS] bytes: [out][C][H * W] -> [out][H * W][CS],
  // packed for a 1x1 kernel.
  const bool linear = step.kind == StepKind::Linear;
  const std::int64_t taps = linear ? in.shape.height * in.shape.width : k * k;
  const std::int64_t row = linear ? in.channel_stride : in.shape.channels;
  const std::vector<std::int8_t> moved = channels_last(w, out_channels, in.shape.channels, taps, row);
  const std::int64_t real_in = linear ? taps * row : row;
  const Int8ConvGeometry g{.in_channel_stride = linear ? real_in : in.channel_stride,
                           .out_channels = out.channel_stride,
                           .kernel_h = k,
                           .kernel_w = k};
  step.kernel_weights.resize(
      static_cast<std::size_t>(g.out_channels / kInt8ChannelBlock * g.packed_block_bytes()));
  kernels::pack_int8_conv_weights(g, out_channels, real_in, moved.data(), step.kernel_weights.data());
}

void QuantizedModel::prepare_epilogue(QuantizedStep& step, const QuantizedValue& in,
                                      const QuantizedValue& out) {
  // int8_conv.hpp's constants: multiplier = s_x s_w / s_y, offset = (bias - s_x s_w z_x sum w) / s_y + z_y
  // - residual_multiplier z_r. The logits are float: s_y = 1, z_y = 0. Computed in double, rounded once.
  const bool float_output = writes_logits(step);
  const double s_x = in.quantization.scale, s_y = float_output ? 1.0 : out.quantization.scale;
  const double z_x = in.quantization.zero_point, z_y = float_output ? 0.0 : out.quantization.zero_point;
  double residual_shift = 0.0;
  if (step.residual >= 0) {
    const AffineQuantization& r = values_[static_cast<std::size_t>(step.residual)].quantization;
    step.residual_multiplier = static_cast<float>(r.scale / s_y);
    residual_shift = r.scale / s_y * r.zero_point;
  }
  const std::vector<std::int8_t>& w = step.weights.values;
  const std::size_t out_channels = step.bias.size(), per_channel = w.size() / out_channels;
  // The padding channels: multiplier 0 and offset z_y give them real zero.
  step.multiplier.assign(static_cast<std::size_t>(out.channel_stride), 0.0f);
  step.offset.assign(static_cast<std::size_t>(out.channel_stride), static_cast<float>(z_y));
  for (std::size_t co = 0; co < out_channels; ++co) {
    const auto first = w.begin() + static_cast<std::ptrdiff_t>(co * per_channel);
    const double weight_sum = std::accumulate(first, first + static_cast<std::ptrdiff_t>(per_channel), 0.0);
    const double s_xw = s_x * step.weights.scales[co];
    step.multiplier[co] = static_cast<float>(s_xw / s_y);
    step.offset[co] =
        static_cast<float>((step.bias[co] - s_xw * z_x * weight_sum) / s_y + z_y - residual_shift);
  }
}

std::uint8_t* QuantizedModel::buffer(int value, std::int64_t batch) {
  const QuantizedValue& v = values_[static_cast<std::size_t>(value)];
  std::vector<std::uint8_t>& bytes = buffers_[static_cast<std::size_t>(value)];
  bytes.resize(static_cast<std::size_t>(batch * v.shape.height * v.shape.width * v.channel_stride));
  return bytes.data();
}

Int8Epilogue QuantizedModel::epilogue(const QuantizedStep& step) const {
  const QuantizedValue& out = values_[static_cast<std::size_t>(step.output)];
  Int8Epilogue e = writes_logits(step) ? kernels::int8_bounds_float(step.relu)
                                       : kernels::int8_bounds_u8(out.quantization.zero_point, step.relu);
  if (step.relu && !std::isinf(step.relu_upper)) {  // a ReLU6: its top, in the output's units
    e.upper_bound = writes_logits(step)
                        ? step.relu_upper
                        : std::min(e.upper_bound, static_cast<float>(out.quantization.zero_point) +
                                                      step.relu_upper / out.quantization.scale);
  }
  e.multiplier = step.multiplier.data();
  e.offset = step.offset.data();
  if (step.residual >= 0) e.residual = buffers_[static_cast<std::size_t>(step.residual)].data();
  e.residual_multiplier = step.residual_multiplier;
  return e;
}

void* QuantizedModel::destination(const QuantizedStep& step, std::int64_t batch) {
  return writes_logits(step) ? static_cast<void*>(logits_.data()) : buffer(step.output, batch);
}

void QuantizedModel::run_conv(const QuantizedStep& step, std::int64_t batch) {
  const QuantizedValue& in = values_[static_cast<std::size_t>(step.input)];
  const QuantizedValue& out = values_[static_cast<std::size_t>(step.output)];
  const std::int64_t pad = step.padding, cs = in.channel_stride;
  const std::uint8_t* x = buffers_[static_cast<std::size_t>(step.input)].data();
  if (pad > 0) {
    padded_.resize(
        static_cast<std::size_t>(batch * (in.shape.height + 2 * pad) * (in.shape.width + 2 * pad) * cs));
    kernels::pad_nhwc_u8(batch, in.shape.height, in.shape.width, cs, pad,
                         static_cast<std::uint8_t>(in.quantization.zero_point), x, padded_.data());
    x = padded_.data();
  }
  const Int8ConvGeometry g{.batch = batch,
                           .padded_height = in.shape.height + 2 * pad,
                           .padded_width = in.shape.width + 2 * pad,
                           .in_channel_stride = cs,
                           .out_channels = out.channel_stride,
                           .kernel_h = step.kernel,
                           .kernel_w = step.kernel,
                           .stride = step.stride,
                           .dilation = step.dilation};
  const Int8Epilogue e = epilogue(step);
  void* y = destination(step, batch);
  if (is_depthwise(step)) {
    kernels::int8_depthwise_conv2d(g, x, step.kernel_weights.data(), e, y);
  } else {
    kernels::int8_conv2d(g, x, step.kernel_weights.data(), e, y);
  }
}

void QuantizedModel::run_linear(const QuantizedStep& step, std::int64_t batch) {
  const QuantizedValue& in = values_[static_cast<std::size_t>(step.input)];
  const QuantizedValue& out = values_[static_cast<std::size_t>(step.output)];
  // Each image is one pixel whose channels are the whole [H][W][CS] value.
  const Int8ConvGeometry g{.batch = batch,
                           .in_channel_stride = in.shape.height * in.shape.width * in.channel_stride,
                           .out_channels = out.channel_stride};
  kernels::int8_conv2d(g, buffers_[static_cast<std::size_t>(step.input)].data(), step.kernel_weights.data(),
                       epilogue(step), destination(step, batch));
}

Tensor QuantizedModel::forward(const Tensor& images) {
  const QuantizedValue& input = values_.front();
  KILN_CHECK(images.dim() == 4 && images.shape()[1] == input.shape.channels &&
                 images.shape()[2] == input.shape.height && images.shape()[3] == input.shape.width,
             "int8 model: images ", images.shape().str(), " do not match its input [N, ",
             input.shape.channels, ", ", input.shape.height, ", ", input.shape.width, "]");
  const std::int64_t batch = images.shape()[0];
  const std::int64_t pixels = input.shape.height * input.shape.width, cs = input.channel_stride;
  const QuantizedValue& logits_value = values_[static_cast<std::size_t>(output_)];
  logits_.resize(static_cast<std::size_t>(batch * logits_value.channel_stride));

  // NCHW float -> NHWC u8; the padding channels hold the zero point.
  const std::vector<float> x = images.contiguous().to_vector<float>();
  std::uint8_t* q = buffer(0, batch);
  std::fill(q, q + batch * pixels * cs, static_cast<std::uint8_t>(input.quantization.zero_point));
#pragma omp parallel for schedule(static) if (batch > 1)
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t c = 0; c < input.shape.channels; ++c) {
      for (std::int64_t p = 0; p < pixels; ++p)
        q[(n * pixels + p) * cs + c] = input.quantization.quantize(
            x[static_cast<std::size_t>((n * input.shape.channels + c) * pixels + p)]);
    }
  }

  for (const QuantizedStep& step : steps_) {
    const QuantizedValue& in = values_[static_cast<std::size_t>(step.input)];
    const QuantizedValue& out = values_[static_cast<std::size_t>(step.output)];
    const std::uint8_t* src = buffers_[static_cast<std::size_t>(step.input)].data();
    switch (step.kind) {
      case StepKind::Conv:
        run_conv(step, batch);
        break;
      case StepKind::Linear:
        run_linear(step, batch);
        break;
      case StepKind::MaxPool:
        kernels::int8_max_pool2d(pool_geometry(step.pool, in.shape, batch), in.channel_stride, src,
                                 buffer(step.output, batch));
        break;
      case StepKind::AvgPool:
        kernels::int8_avg_pool2d(pool_geometry(step.pool, in.shape, batch), in.channel_stride,
                                 static_cast<std::uint8_t>(in.quantization.zero_point), src,
                                 buffer(step.output, batch));
        break;
      case StepKind::GlobalAvgPool:
        kernels::int8_global_avg_pool2d(batch, in.shape.height * in.shape.width, in.channel_stride, src,
                                        buffer(step.output, batch));
        break;
      case StepKind::PadShortcut:
        kernels::int8_pad_shortcut({.batch = batch,
                                    .height = in.shape.height,
                                    .width = in.shape.width,
                                    .stride = step.stride,
                                    .in_channels = in.shape.channels,
                                    .in_channel_stride = in.channel_stride,
                                    .channels_before = step.channels_before,
                                    .out_channel_stride = out.channel_stride},
                                   static_cast<std::uint8_t>(in.quantization.zero_point), src,
                                   buffer(step.output, batch));
        break;
    }
  }

  Tensor logits = Tensor::empty({batch, classes()});
  float* l = logits.data<float>();
  for (std::int64_t n = 0; n < batch; ++n) {
    std::memcpy(l + n * classes(), logits_.data() + n * logits_value.channel_stride,
                static_cast<std::size_t>(classes()) * sizeof(float));
  }
  return logits;
}

std::int64_t QuantizedModel::weight_bytes() const {
  std::int64_t bytes = 0;
  for (const QuantizedStep& step : steps_) {
    bytes += static_cast<std::int64_t>(step.weights.values.size() +
                                       4 * (step.weights.scales.size() + step.bias.size()));
  }
  return bytes;
}

// ---- the file ---------------------------------------------------------------------------------------------

void QuantizedModel::save(const std::filesystem::path& path, nlohmann::json header) const {
  nlohmann::json values = nlohmann::json::array(), steps = nlohmann::json::array();
  for (const QuantizedValue& v : values_) {
    values.push_back({{"shape", {v.shape.channels, v.shape.height, v.shape.width}},
                      {"scale", v.quantization.scale},
                      {"zero_point", v.quantization.zero_point}});
  }
  train::Checkpoint checkpoint;
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const QuantizedStep& s = steps_[i];
    const nlohmann::json relu_upper =
        std::isinf(s.relu_upper) ? nlohmann::json(nullptr) : nlohmann::json(s.relu_upper);
    steps.push_back({{"kind", kind_name(s.kind)},
                     {"name", s.name},
                     {"input", s.input},
                     {"output", s.output},
                     {"residual", s.residual},
                     {"kernel", s.kernel},
                     {"stride", s.stride},
                     {"padding", s.padding},
                     {"dilation", s.dilation},
                     {"groups", s.groups},
                     {"relu", s.relu},
                     {"relu_upper", relu_upper},
                     {"pool",
                      {{"kernel", {s.pool.kernel[0], s.pool.kernel[1]}},
                       {"stride", {s.pool.stride[0], s.pool.stride[1]}},
                       {"padding", {s.pool.padding[0], s.pool.padding[1]}},
                       {"ceil_mode", s.pool.ceil_mode},
                       {"count_include_pad", s.pool.count_include_pad}}},
                     {"channels_before", s.channels_before}});
    if (!has_weights(s.kind)) continue;
    const std::string prefix = "int8." + std::to_string(i) + ".";
    Tensor weight = Tensor::empty(Shape(s.weight_shape), DType::Int8);
    std::memcpy(weight.data<std::int8_t>(), s.weights.values.data(), s.weights.values.size());
    checkpoint.tensors.emplace_back(prefix + "weight", weight);
    const auto out = static_cast<std::int64_t>(s.bias.size());
    checkpoint.tensors.emplace_back(prefix + "weight_scale", Tensor::from_vector(s.weights.scales, {out}));
    checkpoint.tensors.emplace_back(prefix + "bias", Tensor::from_vector(s.bias, {out}));
  }
  header["kind"] = kQuantizedModelKind;
  header["schema"] = kQuantizedModelSchema;
  header["int8"] = {{"values", values}, {"steps", steps}, {"output", output_}};
  checkpoint.header = std::move(header);
  train::save_checkpoint(path, checkpoint);
}

QuantizedModel QuantizedModel::load(const std::filesystem::path& path, nlohmann::json* header) {
  const train::Checkpoint checkpoint = train::load_checkpoint(path);
  if (header) *header = checkpoint.header;
  return from_checkpoint(checkpoint, path);
}

QuantizedModel QuantizedModel::from_checkpoint(const train::Checkpoint& checkpoint,
                                               const std::filesystem::path& path) {
  train::check_header_field(checkpoint.header, "kind", kQuantizedModelKind, path);
  train::check_header_field(checkpoint.header, "schema", kQuantizedModelSchema, path);
  std::map<std::string, Tensor> tensors(checkpoint.tensors.begin(), checkpoint.tensors.end());
  const auto tensor = [&](const std::string& name, DType dtype, std::int64_t numel) {
    const auto found = tensors.find(name);
    KILN_CHECK(found != tensors.end(), "int8 model ", path.string(), ": tensor '", name, "' is missing");
    KILN_CHECK(found->second.dtype() == dtype && (numel < 0 || found->second.numel() == numel), "int8 model ",
               path.string(), ": tensor '", name, "' is ", found->second.describe());
    return found->second;
  };
  QuantizedModel model;
  try {
    const nlohmann::json& int8 = checkpoint.header.at("int8");
    for (const auto& v : int8.at("values")) {
      QuantizedValue value;
      value.shape = {v.at("shape").at(0).get<std::int64_t>(), v.at("shape").at(1).get<std::int64_t>(),
                     v.at("shape").at(2).get<std::int64_t>()};
      value.quantization = {v.at("scale").get<float>(), v.at("zero_point").get<std::int32_t>()};
      KILN_CHECK(value.shape.numel() > 0 && value.quantization.scale > 0 &&
                     value.quantization.zero_point >= 0 && value.quantization.zero_point <= 255,
                 "int8 model ", path.string(), ": value ", model.values_.size(),
                 " has a bad shape or quantization");
      model.values_.push_back(value);
    }
    const auto value_count = static_cast<int>(model.values_.size());
    model.output_ = int8.at("output").get<int>();
    for (const auto& s : int8.at("steps")) {
      QuantizedStep step;
      step.kind = kind_named(s.at("kind").get<std::string>(), path);
      step.name = s.at("name").get<std::string>();
      step.input = s.at("input").get<int>(), step.output = s.at("output").get<int>();
      step.residual = s.at("residual").get<int>();
      step.kernel = s.at("kernel").get<std::int64_t>(), step.stride = s.at("stride").get<std::int64_t>();
      step.padding = s.at("padding").get<std::int64_t>(),
      step.dilation = s.at("dilation").get<std::int64_t>();
      step.groups = s.at("groups").get<std::int64_t>(), step.relu = s.at("relu").get<bool>();
      if (s.contains("relu_upper") && !s.at("relu_upper").is_null())  // absent before ReLU6: a plain ReLU
        step.relu_upper = s.at("relu_upper").get<float>();
      const auto& pool = s.at("pool");
      step.pool.kernel = {pool.at("kernel").at(0).get<std::int64_t>(),
                          pool.at("kernel").at(1).get<std::int64_t>()};
      step.pool.stride = {pool.at("stride").at(0).get<std::int64_t>(),
                          pool.at("stride").at(1).get<std::int64_t>()};
      step.pool.padding = {pool.at("padding").at(0).get<std::int64_t>(),
                           pool.at("padding").at(1).get<std::int64_t>()};
      step.pool.ceil_mode = pool.at("ceil_mode").get<bool>();
      step.pool.count_include_pad = pool.at("count_include_pad").get<bool>();
      step.channels_before = s.at("channels_before").get<std::int64_t>();
      // Steps read values computed before them and write the next one, in order.
      const int next = static_cast<int>(model.steps_.size()) + 1;
      KILN_CHECK(step.output == next && step.output < value_count && step.input >= 0 &&
                     step.input < step.output && step.residual < step.output && step.kernel >= 1 &&
                     step.stride >= 1 && step.dilation >= 1,
                 "int8 model ", path.string(), ": step '", step.name, "' is inconsistent");
      if (has_weights(step.kind)) {
        const std::string prefix = "int8." + std::to_string(model.steps_.size()) + ".";
        const std::int64_t out = model.values_[static_cast<std::size_t>(step.output)].shape.channels;
        const ValueShape& in = model.values_[static_cast<std::size_t>(step.input)].shape;
        const std::int64_t per_channel = step.kind == StepKind::Linear
                                             ? in.numel()
                                             : in.channels / step.groups * step.kernel * step.kernel;
        const Tensor weight = tensor(prefix + "weight", DType::Int8, out * per_channel);
        step.weight_shape = weight.shape().dims();
        const auto* bytes = weight.data<std::int8_t>();
        step.weights.values.assign(bytes, bytes + weight.numel());
        step.weights.scales = tensor(prefix + "weight_scale", DType::Float32, out).to_vector<float>();
        step.bias = tensor(prefix + "bias", DType::Float32, out).to_vector<float>();
      }
      model.steps_.push_back(std::move(step));
    }
    KILN_CHECK(!model.steps_.empty() && model.output_ == model.steps_.back().output &&
                   model.steps_.back().kind == StepKind::Linear,
               "int8 model ", path.string(), ": the last step must be the classifier and write the output");
  } catch (const nlohmann::json::exception& error) {
    fail("int8 model ", path.string(), ": malformed header: ", error.what());
  }
  model.prepare();
  return model;
}

}  // namespace kiln::quant
