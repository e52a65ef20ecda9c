// The parts of the CUDA convolution tuning (cuda_tuning.hpp) that every build has: the policy, the
// agreement rule and the record of choices. The measuring itself is cuda_tuning.cu.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <utility>

#include "core/error.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"

namespace kiln::kernels::cuda {
namespace {

std::atomic<ConvPolicy> policy{ConvPolicy::Measured};

std::mutex choices_mutex;

// Whether `choice` was made for this shape, pass, element type and device.
bool same_shape(const ConvChoice& choice, const Conv2dGeometry& g, Conv2dDirection direction,
                std::string_view element_type, int device) {
  return choice.geometry == g && choice.direction == direction && choice.element_type == element_type &&
         choice.device == device;
}
std::vector<ConvChoice>& recorded_choices() {
  static std::vector<ConvChoice> choices;
  return choices;
}

}  // namespace

void set_conv_policy(ConvPolicy new_policy) { policy = new_policy; }
ConvPolicy conv_policy() { return policy; }

AgreementTolerance agreement_tolerance(std::int64_t terms, bool bfloat16_output) {
  // Twice one result's bound, with 1% to spare for the magnitude itself, which the library computes in the
  // same precision (a bfloat16 magnitude is rounded to 8 bits, 0.4% at most).
  constexpr double kSlack = 1.01;
  const double summation = static_cast<double>(terms + 4) * 0x1p-23;
  return {2 * summation * kSlack, bfloat16_output ? 2 * 0x1p-8 * kSlack : 0.0};
}

std::int64_t reduction_terms(const Conv2dGeometry& g, Conv2dDirection direction) {
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  switch (direction) {
    case Conv2dDirection::Forward:
      return g.in_channels_per_group() * taps;
    case Conv2dDirection::BackwardData:
      return g.out_channels_per_group() * taps;
    case Conv2dDirection::BackwardWeight:
      return g.batch * g.out_height() * g.out_width();
  }
  return 0;
}

std::int64_t first_disagreement(std::span<const double> library, std::span<const double> candidate,
                                std::span<const double> magnitude, AgreementTolerance tolerance) {
  for (std::size_t i = 0; i < library.size(); ++i) {
    const double allowed = tolerance.per_magnitude * magnitude[i] +
                           tolerance.per_value * std::max(std::fabs(library[i]), std::fabs(candidate[i]));
    // Written so that a NaN anywhere fails it: every comparison with a NaN is false.
    if (!(std::fabs(candidate[i] - library[i]) <= allowed)) return static_cast<std::int64_t>(i);
  }
  return -1;
}

bool ladder_step_serves(const conv2d_ladder::Step& step, const Conv2dGeometry& g,
                        std::string_view element_type) {
  using conv2d_ladder::Layout;
  using ladder::Precision;
  const bool precision_fits = (element_type == "float" && step.precision == Precision::Fp32) ||
                              (element_type == "bfloat16" && step.precision == Precision::Bf16);
  const bool layout_fits = step.layout == Layout::Nhwc || element_type == "float";
  return precision_fits && layout_fits && conv2d_ladder::supports(step, g);
}

const conv2d_ladder::Step* conv_candidate_named(std::string_view name, Conv2dDirection direction,
                                                std::string_view element_type, const Conv2dGeometry& g) {
  if (name == kLibraryCandidate) return nullptr;
  for (const conv2d_ladder::Step& step : conv2d_ladder::steps()) {
    if (step.name != name) continue;
    KILN_CHECK(step.pass == direction, "ladder step ", name, " computes the ",
               conv2d_ladder::pass_name(step.pass), " pass, not ", conv2d_direction_name(direction));
    KILN_CHECK(ladder_step_serves(step, g, element_type), "ladder step ", name, " cannot serve this ",
               element_type, " convolution here (it takes ", ladder::precision_name(step.precision),
               " tensors in ", conv2d_ladder::layout_name(step.layout),
               step.requirement.empty() ? "" : ", with ", step.requirement, ")");
    return &step;
  }
  fail("no ladder step named '", name, "' in this build",
       conv2d_ladder::steps().empty() ? " (built without CUDA: only the library path)" : "");
}

std::vector<ConvChoice> conv_choices() {
  const std::lock_guard lock(choices_mutex);
  return recorded_choices();
}

void forget_conv_choices() {
  const std::lock_guard lock(choices_mutex);
  recorded_choices().clear();
}

RecordedChoice find_conv_choice(const Conv2dGeometry& g, Conv2dDirection direction,
                                std::string_view element_type, int device) {
  // A linear search: a network has a few dozen shapes, and a launch costs more than comparing them all.
  const std::lock_guard lock(choices_mutex);
  for (const ConvChoice& choice : recorded_choices()) {
    if (same_shape(choice, g, direction, element_type, device)) return {true, choice.step};
  }
  return {};
}

void record_conv_choice(ConvChoice choice) {
  const std::lock_guard lock(choices_mutex);
  for (const ConvChoice& recorded : recorded_choices()) {
    // Measured twice at once (two threads): the first record stands.
    if (same_shape(recorded, choice.geometry, choice.direction, choice.element_type, choice.device)) return;
  }
  recorded_choices().push_back(std::move(choice));
}

}  // namespace kiln::kernels::cuda
