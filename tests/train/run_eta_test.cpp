// The run's time-left estimate and the --eval-every schedule (train/run_eta.hpp), on made-up timings.
#include "train/run_eta.hpp"

#include <doctest/doctest.h>

#include <vector>

#include "core/error.hpp"

namespace train_run_eta_test {

using namespace kiln;
using train::evaluates_after_epoch;
using train::RunEta;

TEST_CASE("eval every: every N-th epoch evaluates, and always the last") {
  std::vector<std::int64_t> evaluated;
  for (std::int64_t epoch = 0; epoch < 10; ++epoch) {
    if (evaluates_after_epoch(epoch, 10, 4)) evaluated.push_back(epoch + 1);
  }
  CHECK(evaluated == std::vector<std::int64_t>{4, 8, 10});
  for (std::int64_t epoch = 0; epoch < 5; ++epoch) CHECK(evaluates_after_epoch(epoch, 5, 1));
  CHECK_FALSE(evaluates_after_epoch(0, 3, 5));
  CHECK(evaluates_after_epoch(2, 3, 5));  // N beyond the run: the last epoch only
}

TEST_CASE("run ETA: after an epoch, the later epochs' mean training passes and their evaluations") {
  RunEta eta(10, 4);  // evaluations after epochs 4, 8 and 10
  eta.record_training(30.0);
  eta.record_training(50.0);  // mean 40
  eta.record_evaluation(6.0);
  // After epoch 2 (index 1): epochs 3..10 train (8 x 40) and three of them evaluate (3 x 6).
  CHECK(eta.after_epoch(1) == doctest::Approx(8 * 40.0 + 3 * 6.0));
  // After epoch 8 (index 7): epochs 9 and 10 train, and 10 evaluates.
  CHECK(eta.after_epoch(7) == doctest::Approx(2 * 40.0 + 6.0));
  CHECK(eta.after_epoch(9) == 0.0);
}

TEST_CASE("run ETA: during an epoch, the rest of its pass at its own pace, its evaluation, then the rest") {
  RunEta eta(3, 1);
  // Before any pass is timed: this epoch's pace (2 s a step) projects every pass; no evaluation is timed.
  CHECK(eta.during_epoch(0, 10, 40, 20.0) == doctest::Approx(30 * 2.0 + 2 * 80.0));
  eta.record_training(100.0);
  eta.record_evaluation(10.0);
  // Epoch 2 of 3, a quarter done in 20 s: 60 s more of this pass and its evaluation, then one mean epoch.
  CHECK(eta.during_epoch(1, 10, 40, 20.0) == doctest::Approx(60.0 + 10.0 + (100.0 + 10.0)));
  // The last epoch's last step: only its evaluation is left.
  CHECK(eta.during_epoch(2, 40, 40, 80.0) == doctest::Approx(10.0));
}

TEST_CASE("run ETA: bad arguments are errors") {
  CHECK_THROWS_AS(RunEta(0, 1), Error);
  CHECK_THROWS_AS(RunEta(5, 0), Error);
  const RunEta eta(5, 1);
  CHECK_THROWS_WITH_AS(eta.after_epoch(0), "run ETA: no training pass has been timed yet", Error);
  CHECK_THROWS_AS(eta.during_epoch(0, 0, 10, 1.0), Error);
}

}  // namespace train_run_eta_test
