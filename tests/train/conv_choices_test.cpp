// A run's cuda_conv_choices.json read back (train/conv_choices.hpp): the choices a run wrote come back as
// they were, for the replaying run's device; a file that cannot be replayed here is refused before anything
// is recorded, naming the file, the choice and the problem. No GPU needed: the record and the file are host
// state, and the library path is a candidate in every build.
#include "train/conv_choices.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "tests/support/scratch_folder.hpp"

namespace train_conv_choices_test {

namespace {

using namespace kiln;
using kernels::Conv2dDirection;
using kernels::Conv2dGeometry;
namespace tuning = kernels::cuda;

Conv2dGeometry geometry(std::int64_t batch, std::int64_t channels, std::int64_t size, std::int64_t filters,
                        std::int64_t groups = 1) {
  Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = channels;
  g.in_height = size;
  g.in_width = size;
  g.out_channels = filters;
  g.kernel_h = 3;
  g.kernel_w = 3;
  g.pad_h = 1;
  g.pad_w = 1;
  g.groups = groups;
  return g;
}

tuning::ConvChoice library_choice(const Conv2dGeometry& g, Conv2dDirection direction,
                                  const char* element_type, int device) {
  return {g,
          direction,
          element_type,
          device,
          std::string(tuning::kLibraryCandidate),
          nullptr,
          {{std::string(tuning::kLibraryCandidate), 0.25, ""}, {"07_forward_wgmma_bf16", 0.0, "disagrees"}}};
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The error replaying `text` gives, or "" when it replays; records nothing either way when it fails.
std::string replay_error(const testing::ScratchFolder& scratch, const std::string& text) {
  const std::filesystem::path file = scratch.path() / "choices.json";
  write_text(file, text);
  tuning::forget_conv_choices();
  try {
    train::replay_conv_choices(file, 0);
  } catch (const Error& error) {
    CHECK(tuning::conv_choices().empty());  // a bad file changes nothing
    return error.what();
  }
  return "";
}

TEST_CASE(
    "a run's convolution choices, written and replayed, come back as they were, for the replaying device") {
  const testing::ScratchFolder scratch("kiln-conv-choices-test", "round-trip");
  tuning::forget_conv_choices();
  const Conv2dGeometry wide = geometry(128, 64, 8, 64), narrow = geometry(2, 3, 32, 16);
  tuning::record_conv_choice(library_choice(wide, Conv2dDirection::BackwardWeight, "bfloat16", 0));
  tuning::record_conv_choice(library_choice(narrow, Conv2dDirection::Forward, "float", 0));
  train::write_conv_choices(scratch.path());
  const std::vector<tuning::ConvChoice> written = tuning::conv_choices();
  tuning::forget_conv_choices();

  CHECK(train::replay_conv_choices(scratch.path() / train::kConvChoicesFile, 1) == 2);
  const std::vector<tuning::ConvChoice> replayed = tuning::conv_choices();
  REQUIRE(replayed.size() == written.size());
  for (std::size_t i = 0; i < written.size(); ++i) {
    INFO("choice ", i);
    CHECK(replayed[i].geometry == written[i].geometry);
    CHECK(replayed[i].direction == written[i].direction);
    CHECK(replayed[i].element_type == written[i].element_type);
    CHECK(replayed[i].device == 1);  // the replaying run's device, whatever the file's
    CHECK(replayed[i].chosen == written[i].chosen);
    CHECK(replayed[i].step == nullptr);
    REQUIRE(replayed[i].trials.size() == written[i].trials.size());
    CHECK(replayed[i].trials[0].median_milliseconds == written[i].trials[0].median_milliseconds);
    CHECK(replayed[i].trials[1].rejected == written[i].trials[1].rejected);
  }
  // Found for the device it was replayed for, so the first call of the shape measures nothing.
  CHECK(tuning::find_conv_choice(wide, Conv2dDirection::BackwardWeight, "bfloat16", 1).found);
  CHECK_FALSE(tuning::find_conv_choice(wide, Conv2dDirection::BackwardWeight, "bfloat16", 0).found);
  CHECK_FALSE(tuning::find_conv_choice(wide, Conv2dDirection::Forward, "bfloat16", 1).found);
  tuning::forget_conv_choices();
}

TEST_CASE("replaying a choices file that cannot serve here is refused, naming the file, the choice and why") {
  const testing::ScratchFolder scratch("kiln-conv-choices-test", "refused");
  const std::string file = (scratch.path() / "choices.json").string();
  const std::string good =
      R"({"direction": "forward", "element_type": "float", "device": 0, "chosen": "library", "geometry":
          {"batch": 2, "in_channels": 8, "in_height": 9, "in_width": 9, "out_channels": 16, "kernel_h": 3,
           "kernel_w": 3, "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1, "dilation_h": 1,
           "dilation_w": 1, "groups": 1}})";
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string entry = good;
    entry.replace(entry.find(from), from.size(), to);
    return "[" + good + ", " + entry + "]";
  };
  CHECK(replay_error(scratch, "[" + good + "]").empty());

  SUBCASE("not JSON, or not a list of choices") {
    for (const std::string& text :
         {std::string("epoch,loss\n1,0.5\n"), std::string(R"({"chosen": "library"})")}) {
      const std::string error = replay_error(scratch, text);
      CHECK(error.find(file) != std::string::npos);
      CHECK(error.find("not a choices file") != std::string::npos);
    }
  }
  SUBCASE("a choice with a field missing, or a direction or element type that does not exist") {
    const std::string missing = replay_error(scratch, with(R"("kernel_w": 3,)", ""));
    CHECK(missing.find("choice 2 of 2") != std::string::npos);
    CHECK(missing.find("kernel_w") != std::string::npos);
    CHECK(replay_error(scratch, with("forward", "sideways")).find("direction 'sideways'") !=
          std::string::npos);
    CHECK(replay_error(scratch, with(R"("float")", R"("half")")).find("element type 'half'") !=
          std::string::npos);
  }
  SUBCASE("a step this build or GPU cannot run for that shape") {
    const std::string unknown =
        replay_error(scratch, with(R"("library")", R"("09_forward_from_the_future")"));
    CHECK(unknown.find(file) != std::string::npos);
    CHECK(unknown.find("choice 2 of 2") != std::string::npos);
    CHECK(unknown.find("no ladder step named '09_forward_from_the_future'") != std::string::npos);
    CHECK(unknown.find("--cuda-conv measured") != std::string::npos);
    if (!kernels::conv2d_ladder::steps()
             .empty()) {  // a CUDA build: the steps exist, but not for these shapes
      const std::string other_pass =
          replay_error(scratch, with(R"("library")", R"("05_backward_data_implicit_gemm_bf16")"));
      CHECK(other_pass.find("computes the backward_data pass, not forward") != std::string::npos);
      // A bf16 step for float tensors: it would round the operands.
      const std::string precision =
          replay_error(scratch, with(R"("library")", R"("05_forward_implicit_gemm_bf16")"));
      CHECK(precision.find("cannot serve this float convolution") != std::string::npos);
    }
  }
  tuning::forget_conv_choices();
}

}  // namespace

}  // namespace train_conv_choices_test
