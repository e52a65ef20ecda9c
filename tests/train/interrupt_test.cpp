// Stopping a run with Ctrl-C (train/interrupt.hpp): the first signal only asks, the trainer stops after the
// step in flight or after the epoch's checkpoint, says what last.kiln holds, and a --resume from there ends
// with the weights of a run that never stopped; a second signal gets the default action back, and a
// signal ignored at start stays ignored.
#include "train/interrupt.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "train/checkpoint.hpp"
#include "train/cross_validation.hpp"
#include "train/model_io.hpp"
#include "train/trainer.hpp"

namespace train_interrupt_test {

using namespace kiln;
using kiln::testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

train::TrainConfig two_epochs(const fs::path& run_dir) {
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(kiln::testing::kCifarSubset, run_dir, 11);
  config.epochs = 2;
  config.batch_size = 16;
  config.max_steps_per_epoch = 3;
  return config;
}

// Asks for a stop as Ctrl-C would when the report of step `step` of epoch `epoch` (0-based) arrives, which
// is while the next step runs (train/loss_readback.hpp), or when epoch `epoch` ends if step is -1.
class AskToStop : public train::CrossValidationObserver {
 public:
  AskToStop(std::int64_t epoch, std::int64_t step) : epoch_(epoch), step_(step) {}
  void on_step(const train::StepProgress& progress) override {
    if (progress.epoch == epoch_ && progress.step == step_) train::request_interrupt();
  }
  void on_epoch(const train::EpochSummary& summary) override {
    if (summary.epoch == epoch_ && step_ < 0) train::request_interrupt();
  }

 private:
  std::int64_t epoch_, step_;
};

std::vector<std::vector<float>> weights_of(const fs::path& checkpoint) {
  std::vector<std::vector<float>> weights;
  for (const auto& [name, tensor] : train::model_state(*train::load_model(checkpoint).model))
    weights.push_back(tensor.to_vector<float>());
  return weights;
}

std::int64_t epoch_of(const fs::path& checkpoint) {
  return train::load_checkpoint(checkpoint).header.at("epoch").get<std::int64_t>();
}

int counted_signals = 0;
extern "C" void count_signal(int) { ++counted_signals; }

// Whether `signal`'s action now is `handler` (SIG_DFL, SIG_IGN or a function).
bool handled_by(int signal, sighandler_t handler) {
  struct sigaction current {};
  sigaction(signal, nullptr, &current);
  return current.sa_handler == handler;
}

// The message of the Interrupted that `run` ends with ("" when it ends otherwise).
template <typename Run>
std::string interruption(Run run) {
  try {
    run();
  } catch (const train::Interrupted& stopped) {
    return stopped.what();
  }
  return "";
}

}  // namespace

TEST_CASE(
    "interrupt: a stop asked mid-epoch ends the run after the step; --resume ends as if never stopped") {
  const ScratchFolder scratch("kiln-interrupt-test", "mid-epoch");
  train::TrainingObserver silent;
  train::train(two_epochs(scratch.path() / "straight"), train::RunStart::Fresh, silent);

  train::clear_interrupt();
  AskToStop in_epoch_2(1, 0);
  const fs::path run = scratch.path() / "stopped";
  const std::string message =
      interruption([&] { train::train(two_epochs(run), train::RunStart::Fresh, in_epoch_2); });
  CHECK_MESSAGE(message.starts_with("interrupted in epoch 2 at step 2 of 3; "), message);
  CHECK_MESSAGE(
      message.find("last.kiln holds epoch 1 of 2 (epoch 2's steps so far are not in it); kiln train ") !=
          std::string::npos,
      message);
  CHECK_MESSAGE(message.ends_with(" --resume continues from there"), message);
  CHECK(epoch_of(run / "last.kiln") == 1);

  train::clear_interrupt();
  const train::TrainResult resumed = train::train(two_epochs(run), train::RunStart::Resume, silent);
  CHECK(resumed.history.size() == 1);
  CHECK(weights_of(run / "last.kiln") == weights_of(scratch.path() / "straight" / "last.kiln"));
}

TEST_CASE("interrupt: a stop asked during an epoch's end stops after its checkpoint, or before any") {
  const ScratchFolder scratch("kiln-interrupt-test", "epoch-end");
  AskToStop after_epoch_1(0, -1);
  train::clear_interrupt();
  const std::string message = interruption(
      [&] { train::train(two_epochs(scratch.path() / "a"), train::RunStart::Fresh, after_epoch_1); });
  CHECK_MESSAGE(message.starts_with("interrupted after epoch 1; "), message);
  CHECK_MESSAGE(message.find("last.kiln holds epoch 1 of 2; kiln train ") != std::string::npos, message);
  CHECK(epoch_of(scratch.path() / "a" / "last.kiln") == 1);

  AskToStop at_second_step(0, 0);
  train::clear_interrupt();
  CHECK_THROWS_WITH_AS(train::train(two_epochs(scratch.path() / "b"), train::RunStart::Fresh, at_second_step),
                       "interrupted in epoch 1 at step 2 of 3; no checkpoint was written yet",
                       train::Interrupted);
  CHECK_FALSE(fs::exists(scratch.path() / "b" / "last.kiln"));
  train::clear_interrupt();
}

TEST_CASE("interrupt: a fold of a cross-validation names the command that resumes the whole of it") {
  const ScratchFolder scratch("kiln-interrupt-test", "folds");
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(
      kiln::testing::make_two_class_data(scratch.path() / "data", 6, 2), scratch.path() / "cv", 3);
  config.folds = 2;
  config.epochs = 2;
  AskToStop after_epoch_1(0, -1);
  train::clear_interrupt();
  const std::string message =
      interruption([&] { train::cross_validate(config, train::RunStart::Fresh, after_epoch_1); });
  CHECK_MESSAGE(message.find("fold-1") != std::string::npos, message);  // the fold's last.kiln
  CHECK_MESSAGE(message.ends_with(" --out " + (scratch.path() / "cv").string() +
                                  " --folds 2 --resume continues from there"),
                message);
  train::clear_interrupt();
}

TEST_CASE(
    "interrupt: the first signal only asks, the second gets the default action, ignored stays ignored") {
  struct sigaction counting {
  }, original{};
  counting.sa_handler = count_signal;
  sigemptyset(&counting.sa_mask);
  sigaction(SIGINT, &counting, &original);
  counted_signals = 0;
  {
    const train::StopOnInterrupt stop;
    CHECK_FALSE(train::interrupt_requested());
    std::raise(SIGINT);
    CHECK(train::interrupt_requested());
    CHECK(handled_by(SIGINT, SIG_DFL));  // a second Ctrl-C would end the process
  }
  CHECK(handled_by(SIGINT, count_signal));  // the handler from before, back
  std::raise(SIGINT);
  CHECK(counted_signals == 1);

  signal(SIGINT, SIG_IGN);  // as a script's background job starts
  {
    const train::StopOnInterrupt stop;
    CHECK_FALSE(train::interrupt_requested());  // making one clears the flag
    CHECK(handled_by(SIGINT, SIG_IGN));
    std::raise(SIGINT);
    CHECK_FALSE(train::interrupt_requested());
  }
  sigaction(SIGINT, &original, nullptr);
  train::clear_interrupt();
}

}  // namespace train_interrupt_test
