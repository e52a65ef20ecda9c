#include "train/grad_cam.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "layers/sequential.hpp"
#include "train/multi_label_metrics.hpp"

namespace kiln::train {
namespace {

// One pass of the net without the tape: A (the output of the last layer that is still [1, C, h, w] with
// more than one position), that layer's index, and the logits the whole net gives.
struct FeatureSplit {
  std::size_t layer = 0;
  Tensor features, logits;
};

FeatureSplit split_at_last_spatial_layer(const layers::Sequential& net, const Tensor& input) {
  NoGradGuard no_grad;
  Tensor x = input;
  std::optional<FeatureSplit> found;
  for (std::size_t i = 0; i < net.size(); ++i) {
    x = net[i]->forward(x);
    if (x.dim() == 4 && x.size(2) * x.size(3) > 1) found = FeatureSplit{i, x, Tensor()};
  }
  KILN_CHECK(found.has_value(), "explain: the model has no layer with a spatial output to explain");
  found->logits = x;
  return *found;
}

// Runs layers [first, last] of the net on x.
Tensor run_layers(const layers::Sequential& net, std::size_t first, std::size_t last, Tensor x) {
  for (std::size_t i = first; i <= last && i < net.size(); ++i) x = net[i]->forward(x);
  return x;
}

}  // namespace

Explanation grad_cam(const LoadedModel& loaded, const data::Image& image, std::int64_t top_k) {
  const auto* net = dynamic_cast<const layers::Sequential*>(loaded.model.get());
  KILN_CHECK(net != nullptr && net->size() > 0, "explain: the model must be a Sequential of layers");
  loaded.model->eval();
  const Tensor input = loaded.preprocessing.apply(image).unsqueeze(0);
  const FeatureSplit pass = split_at_last_spatial_layer(*net, input);
  const std::size_t split = pass.layer;
  KILN_CHECK(split + 1 < net->size(),
             "explain: the model ends in a spatial layer; nothing scores the classes");
  const Tensor& features = pass.features;  // A, [1, C, h, w]
  const std::int64_t channels = features.size(1), height = features.size(2), width = features.size(3);
  const std::vector<float> activations = features.to_vector<float>();
  std::vector<double> probabilities;
  {
    NoGradGuard no_grad;
    if (loaded.multi_label()) {  // each label its own sigmoid: the labels most likely to apply come first
      for (const double logit : pass.logits.to_vector<double>())
        probabilities.push_back(label_probability(logit));
    } else {
      probabilities = softmax(pass.logits, 1).to_vector<double>();
    }
  }
  std::vector<std::int64_t> order(probabilities.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return probabilities[a] > probabilities[b]; });
  order.resize(
      static_cast<std::size_t>(std::clamp<std::int64_t>(top_k, 1, static_cast<std::int64_t>(order.size()))));

  Explanation explanation{net->name(split), loaded.preprocessing.as_seen(image), {}};
  for (const std::int64_t k : order) {
    Tensor leaf = features.detach();
    leaf.set_requires_grad();
    const Tensor logits = run_layers(*net, split + 1, net->size() - 1, leaf);
    std::vector<float> pick(static_cast<std::size_t>(logits.numel()), 0.0f);
    pick[static_cast<std::size_t>(k)] = 1.0f;
    sum(logits * Tensor::from_vector<float>(pick, logits.shape())).backward();
    const std::vector<float> gradient = leaf.grad().to_vector<float>();

    ClassActivationMap map{loaded.classes[static_cast<std::size_t>(k)],
                           k,
                           probabilities[static_cast<std::size_t>(k)],
                           height,
                           width,
                           std::vector<float>(static_cast<std::size_t>(height * width), 0.0f)};
    const std::int64_t plane = height * width;
    for (std::int64_t c = 0; c < channels; ++c) {
      double alpha = 0;
      for (std::int64_t p = 0; p < plane; ++p) alpha += gradient[static_cast<std::size_t>(c * plane + p)];
      alpha /= static_cast<double>(plane);
      for (std::int64_t p = 0; p < plane; ++p) {
        map.values[static_cast<std::size_t>(p)] +=
            static_cast<float>(alpha * activations[static_cast<std::size_t>(c * plane + p)]);
      }
    }
    float largest = 0;
    for (float& v : map.values) {
      v = std::max(v, 0.0f);
      largest = std::max(largest, v);
    }
    if (largest > 0) {
      for (float& v : map.values) v /= largest;
    }
    explanation.maps.push_back(std::move(map));
  }
  loaded.model->zero_grad();  // the explanations' backward passes left gradients on the weights
  return explanation;
}

}  // namespace kiln::train
