// preprocessing_for: measuring a training set to choose its Preprocessing (data/preprocessing.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <map>
#include <thread>
#include <tuple>
#include <utility>

#include "core/error.hpp"
#include "data/preprocessing.hpp"
#include "data/shuffle.hpp"

namespace kiln::data {

namespace {

// What the survey learns from the images one thread decodes. Pixel sums are exact integers, so the
// result is the same however the images are shared among threads.
struct Survey {
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> images_of_size;  // (height, width) -> count
  std::uint64_t grey_pixels = 0, grey_sum = 0, grey_square_sum = 0;              // over grayscale images
  std::uint64_t colour_pixels = 0;                                               // over colour images
  std::array<std::uint64_t, 3> colour_sum{}, colour_square_sum{};
  std::string first_failure;

  void add(const Image& image) {
    ++images_of_size[{image.height, image.width}];
    const auto pixels = static_cast<std::uint64_t>(image.height * image.width);
    const auto channels = static_cast<std::size_t>(image.channels);
    for (std::size_t i = 0; i < image.pixels.size(); ++i) {
      const std::uint64_t value = image.pixels[i];
      if (channels == 1) {
        grey_sum += value;
        grey_square_sum += value * value;
      } else {
        colour_sum[i % 3] += value;
        colour_square_sum[i % 3] += value * value;
      }
    }
    (channels == 1 ? grey_pixels : colour_pixels) += pixels;
  }

  void merge(const Survey& other) {
    for (const auto& [size, count] : other.images_of_size) images_of_size[size] += count;
    grey_pixels += other.grey_pixels;
    grey_sum += other.grey_sum;
    grey_square_sum += other.grey_square_sum;
    colour_pixels += other.colour_pixels;
    for (std::size_t c = 0; c < 3; ++c) {
      colour_sum[c] += other.colour_sum[c];
      colour_square_sum[c] += other.colour_square_sum[c];
    }
    if (first_failure.empty()) first_failure = other.first_failure;
  }
};

// The samples to survey: all, or a seeded random choice of max_images of them (in folder order).
std::vector<std::size_t> surveyed_samples(const ImageFolder& folder, const PreprocessingOptions& options) {
  std::vector<std::size_t> chosen =
      seeded_permutation(folder.size(), {options.seed, kStatisticsSampleStream, 0});
  if (options.max_images > 0 && chosen.size() > static_cast<std::size_t>(options.max_images)) {
    chosen.resize(static_cast<std::size_t>(options.max_images));
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Decodes the chosen samples on `threads` threads (thread t takes every t-th one) and merges what they saw.
Survey survey(const ImageFolder& folder, const std::vector<std::size_t>& chosen, int threads) {
  const std::size_t thread_count =
      std::min(static_cast<std::size_t>(std::max(threads, 1)), std::max<std::size_t>(chosen.size(), 1));
  std::vector<Survey> surveys(thread_count);
  std::vector<std::exception_ptr> errors(thread_count);
  auto work = [&](std::size_t t) {
    try {
      for (std::size_t k = t; k < chosen.size(); k += thread_count) {
        try {
          surveys[t].add(folder.decode(chosen[k]));
        } catch (const Error& error) {
          if (surveys[t].first_failure.empty()) surveys[t].first_failure = error.what();
        }
      }
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  for (std::size_t t = 1; t < thread_count; ++t) workers.emplace_back(work, t);
  work(0);
  for (std::thread& worker : workers) worker.join();
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  Survey total;
  for (const Survey& part : surveys) total.merge(part);
  return total;
}

// Mean and standard deviation, in [0, 1] pixel units, of `pixels` values with these sums.
std::pair<float, float> mean_and_std(std::uint64_t pixels, std::uint64_t sum, std::uint64_t square_sum) {
  const double count = static_cast<double>(pixels);
  const double mean = static_cast<double>(sum) / count;
  const double variance = std::max(0.0, static_cast<double>(square_sum) / count - mean * mean);
  const double deviation = std::sqrt(variance) / 255.0;
  // A constant channel: std 1 leaves it centred but unscaled rather than dividing by zero.
  return {static_cast<float>(mean / 255.0), deviation > 1e-6 ? static_cast<float>(deviation) : 1.0f};
}

}  // namespace

std::pair<std::int64_t, std::int64_t> default_input_size(std::int64_t height, std::int64_t width,
                                                         std::int64_t max_side) {
  const std::int64_t longer = std::max(height, width);
  if (max_side <= 0 || longer <= max_side) return {height, width};
  const auto scaled = [&](std::int64_t side) {
    return std::max<std::int64_t>(1, (side * max_side + longer / 2) / longer);
  };
  return {scaled(height), scaled(width)};
}

Preprocessing preprocessing_for(const ImageFolder& folder, const PreprocessingOptions& options,
                                SurveyedSize* most_common_size) {
  KILN_CHECK(folder.size() > 0, folder.root().string(), ": no images to measure the preprocessing from");
  KILN_CHECK((options.height > 0) == (options.width > 0),
             "preprocessing_for: give both height and width, or neither");
  const Survey seen = survey(folder, surveyed_samples(folder, options), options.threads);
  KILN_CHECK(!seen.images_of_size.empty(), folder.root().string(),
             ": none of the images could be decoded (first: ", seen.first_failure, ")");

  // The most common size; the map is ordered, so among equally common sizes the smallest comes first.
  const auto most_common = std::max_element(seen.images_of_size.begin(), seen.images_of_size.end(),
                                            [](const auto& a, const auto& b) { return a.second < b.second; });
  Preprocessing preprocessing;
  preprocessing.resize = options.resize;
  if (options.height > 0) {
    preprocessing.height = options.height;
    preprocessing.width = options.width;
  } else {
    std::tie(preprocessing.height, preprocessing.width) =
        default_input_size(most_common->first.first, most_common->first.second, options.max_side);
  }
  if (most_common_size) *most_common_size = {most_common->first.first, most_common->first.second};

  if (seen.colour_pixels == 0) {
    preprocessing.channels = 1;
    const auto [mean, deviation] = mean_and_std(seen.grey_pixels, seen.grey_sum, seen.grey_square_sum);
    preprocessing.mean = {mean};
    preprocessing.std = {deviation};
  } else {
    // A grayscale image becomes three equal channels, so its pixels count towards each channel.
    preprocessing.channels = 3;
    for (std::size_t c = 0; c < 3; ++c) {
      const auto [mean, deviation] =
          mean_and_std(seen.colour_pixels + seen.grey_pixels, seen.colour_sum[c] + seen.grey_sum,
                       seen.colour_square_sum[c] + seen.grey_square_sum);
      preprocessing.mean.push_back(mean);
      preprocessing.std.push_back(deviation);
    }
  }
  preprocessing.validate();
  return preprocessing;
}

}  // namespace kiln::data
