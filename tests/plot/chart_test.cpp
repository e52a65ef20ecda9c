// Nice ticks, the line chart (curves land where their values say) and the confusion matrix picture.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "plot/confusion_matrix.hpp"
#include "plot/line_chart.hpp"
#include "plot/ticks.hpp"

namespace plot_chart_test {

using namespace kiln::plot;

TEST_CASE("plot ticks: steps of 1, 2 or 5 times a power of ten that cover the range") {
  const Ticks a = nice_ticks(0.0, 1.0, 5);
  CHECK(a.step == doctest::Approx(0.2));
  CHECK(a.low == 0.0);
  CHECK(a.high == doctest::Approx(1.0));
  CHECK(a.values.size() == 6);
  const Ticks b = nice_ticks(0.37, 2.41, 5);
  CHECK(b.step == doctest::Approx(0.5));
  CHECK(b.low == doctest::Approx(0.0));
  CHECK(b.high == doctest::Approx(2.5));
  const Ticks c = nice_ticks(1, 3, 8, 1.0);  // epochs: never a step below 1
  CHECK(c.step == 1.0);
  CHECK(c.values == std::vector<double>{1, 2, 3});
  const Ticks same = nice_ticks(4, 4, 5);  // a flat curve still gets an axis
  CHECK(same.low < 4);
  CHECK(same.high > 4);
  CHECK(tick_label(0.25, 0.05) == "0.25");
  CHECK(tick_label(40, 20) == "40");
  CHECK(tick_label(-1e-12, 0.1) == "0.0");
  CHECK_THROWS_AS(nice_ticks(std::nan(""), 1, 5), kiln::Error);
}

namespace {
// The columns in which a colour appears, leftmost and rightmost; rows likewise.
struct Box {
  int left = 1 << 30, right = -1, top = 1 << 30, bottom = -1;
};
Box box_of(const Canvas& canvas, Color color) {
  Box box;
  for (int y = 0; y < canvas.height(); ++y) {
    for (int x = 0; x < canvas.width(); ++x) {
      if (canvas.at(x, y) == color) {
        box.left = std::min(box.left, x);
        box.right = std::max(box.right, x);
        box.top = std::min(box.top, y);
        box.bottom = std::max(box.bottom, y);
      }
    }
  }
  return box;
}
}  // namespace

TEST_CASE(
    "plot line chart: a rising curve runs from the bottom left to the top right, a falling one the other "
    "way") {
  LineChart chart{"t", "epoch", "value", {}, std::pair{0.0, 1.0}};
  chart.series.push_back(
      {"rising", series_color(0), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {0, .1, .2, .3, .4, .5, .6, .7, .8, .9}});
  chart.series.push_back(
      {"falling", series_color(1), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {.9, .8, .7, .6, .5, .4, .3, .2, .1, 0}});
  const Canvas canvas = draw(chart, 800, 500);
  const Box rising = box_of(canvas, series_color(0)), falling = box_of(canvas, series_color(1));
  REQUIRE(rising.right > rising.left);
  REQUIRE(falling.right > falling.left);
  // Both span the same x range (the legend swatches sit inside it, top right).
  CHECK(std::abs(rising.left - falling.left) <= 1);
  // The rising curve's first point is low, the falling curve's first point is high.
  const auto first_point_row = [&](Color color) {
    const int x = box_of(canvas, color).left + 1;
    for (int y = 0; y < canvas.height(); ++y) {
      if (canvas.at(x, y) == color) return y;
    }
    return -1;
  };
  CHECK(first_point_row(series_color(0)) > first_point_row(series_color(1)) + 200);
}

TEST_CASE("plot line chart: errors name the chart") {
  LineChart mismatched{"loss", "epoch", "loss", {{"train", series_color(0), {1, 2}, {1}}}, {}};
  CHECK_THROWS_WITH_AS(draw(mismatched),
                       doctest::Contains("plot 'loss': series 'train' has 2 x values and 1 y values"),
                       kiln::Error);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  LineChart empty{"loss", "epoch", "loss", {{"train", series_color(0), {1}, {nan}}}, {}};
  CHECK_THROWS_WITH_AS(draw(empty), doctest::Contains("no series has a finite point"), kiln::Error);
}

TEST_CASE("plot confusion matrix: the diagonal of a perfect classifier is dark, everything else white") {
  const std::vector<std::string> classes{"cat", "dog", "ship"};
  const Canvas perfect = draw_confusion_matrix({{5, 0, 0}, {0, 7, 0}, {0, 0, 2}}, classes, "perfect");
  const Canvas confused = draw_confusion_matrix({{0, 5, 0}, {7, 0, 0}, {0, 0, 2}}, classes, "confused");
  const Color dark{8, 48, 107};  // a cell holding all of its row
  const Box diagonal = box_of(perfect, dark), swapped = box_of(confused, dark);
  // Same picture size, and the dark cells span the whole matrix in both, but the top-left cell is dark only
  // for the perfect classifier.
  CHECK(perfect.width() == confused.width());
  REQUIRE(diagonal.right > diagonal.left);
  CHECK(perfect.at(diagonal.left + 2, diagonal.top + 2) == dark);
  CHECK_FALSE(confused.at(diagonal.left + 2, diagonal.top + 2) == dark);
  CHECK(swapped.right > swapped.left);
  CHECK_THROWS_AS(draw_confusion_matrix({{1, 2}}, classes, "bad"), kiln::Error);
}

}  // namespace plot_chart_test
