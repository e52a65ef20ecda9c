#include "data/loader.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <utility>

#include "core/error.hpp"
#include "data/balanced_sampler.hpp"
#include "data/shuffle.hpp"

namespace kiln::data {

DataLoader::DataLoader(const ImageFolder& folder, Preprocessing preprocessing, LoaderOptions options)
    : folder_(folder), preprocessing_(std::move(preprocessing)), options_(std::move(options)) {
  KILN_CHECK(folder_.size() > 0, "DataLoader: ", folder_.root().string(), " holds no samples");
  KILN_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be positive, got ", options_.batch_size);
  KILN_CHECK(options_.threads >= 0, "DataLoader: threads must be >= 0, got ", options_.threads);
  KILN_CHECK(!(options_.balanced_sampling && folder_.multi_label()), "DataLoader: ", folder_.root().string(),
             " is multi-label; balanced sampling needs one class per image");
  KILN_CHECK(options_.prefetch_batches >= 0, "DataLoader: prefetch_batches must be >= 0, got ",
             options_.prefetch_batches);
  preprocessing_.validate();
  if (options_.augmentation) options_.augmentation->validate_for(preprocessing_);
  cache_.resize(folder_.size());
  cache_budget_bytes_ =
      options_.cache_budget_bytes >= 0 ? options_.cache_budget_bytes : default_cache_budget_bytes();
  for (int t = 0; t < options_.threads; ++t) workers_.emplace_back([this] { work(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    ++generation_;
  }
  work_available_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void DataLoader::start_epoch(std::int64_t epoch) {
  KILN_CHECK(epoch >= 0, "DataLoader: epoch must be >= 0, got ", epoch);
  std::vector<std::size_t> order(folder_.size());
  if (options_.balanced_sampling) {
    std::vector<std::int64_t> labels;
    labels.reserve(folder_.size());
    for (const Sample& sample : folder_.samples()) labels.push_back(sample.label);
    order = balanced_draws(labels, folder_.size(),
                           {options_.seed, kBalancedSamplerStream + static_cast<std::uint64_t>(epoch), 0});
  } else if (options_.shuffle) {
    order = seeded_permutation(folder_.size(),
                               {options_.seed, kEpochOrderStream + static_cast<std::uint64_t>(epoch), 0});
  } else {
    std::iota(order.begin(), order.end(), std::size_t{0});
  }
  {
    std::lock_guard lock(mutex_);
    ++generation_;
    epoch_ = epoch;
    order_ = std::move(order);
    batch_count_ = batches_per_epoch();
    next_to_claim_ = next_to_return_ = 0;
    finished_.clear();
  }
  work_available_.notify_all();
}

std::int64_t DataLoader::batches_per_epoch() const {
  const auto samples = static_cast<std::int64_t>(folder_.size());
  return options_.drop_last ? samples / options_.batch_size
                            : (samples + options_.batch_size - 1) / options_.batch_size;
}

std::int64_t DataLoader::skipped_files() const {
  std::lock_guard lock(cache_mutex_);
  return static_cast<std::int64_t>(unreadable_.size());
}

std::int64_t DataLoader::cached_bytes() const {
  std::lock_guard lock(cache_mutex_);
  return cached_bytes_;
}

std::vector<std::string> DataLoader::warnings() const {
  std::lock_guard lock(cache_mutex_);
  return warnings_;
}

std::vector<std::size_t> DataLoader::batch_samples(std::int64_t batch) const {
  const auto begin = static_cast<std::size_t>(batch * options_.batch_size);
  const std::size_t end = std::min(order_.size(), begin + static_cast<std::size_t>(options_.batch_size));
  return {order_.begin() + static_cast<std::ptrdiff_t>(begin),
          order_.begin() + static_cast<std::ptrdiff_t>(end)};
}

std::size_t DataLoader::first_position(std::int64_t batch) const {
  return static_cast<std::size_t>(batch * options_.batch_size);
}

bool DataLoader::can_claim() const {
  const std::int64_t ahead = std::max(options_.prefetch_batches, options_.threads);
  return epoch_ >= 0 && next_to_claim_ < batch_count_ && next_to_claim_ < next_to_return_ + ahead;
}

void DataLoader::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_available_.wait(lock, [this] { return stopping_ || can_claim(); });
    if (stopping_) return;
    const std::int64_t batch = next_to_claim_++;
    const std::uint64_t generation = generation_;
    const std::int64_t epoch = epoch_;
    const std::vector<std::size_t> samples = batch_samples(batch);
    lock.unlock();

    Finished finished;
    try {
      finished.batch = make_batch(samples, first_position(batch), epoch, generation);
    } catch (...) {
      finished.error = std::current_exception();
    }

    lock.lock();
    if (generation == generation_) {
      finished_.emplace(batch, std::move(finished));
      batch_finished_.notify_all();
    }
  }
}

std::optional<Batch> DataLoader::next() {
  KILN_CHECK(epoch_ >= 0, "DataLoader: call start_epoch(epoch) before next()");
  while (true) {
    Finished finished;
    if (workers_.empty()) {
      if (next_to_return_ >= batch_count_) return std::nullopt;
      const std::int64_t batch = next_to_return_++;
      finished.batch = make_batch(batch_samples(batch), first_position(batch), epoch_, generation_);
    } else {
      std::unique_lock lock(mutex_);
      if (next_to_return_ >= batch_count_) return std::nullopt;
      batch_finished_.wait(lock, [this] { return finished_.contains(next_to_return_); });
      auto found = finished_.find(next_to_return_);
      finished = std::move(found->second);
      finished_.erase(found);
      ++next_to_return_;
      lock.unlock();
      work_available_.notify_all();  // a place ahead of the consumer just opened
    }
    if (finished.error) std::rethrow_exception(finished.error);
    if (!finished.batch.indices.empty()) return std::move(finished.batch);
    // Every file of this batch was skipped: go on to the next one.
  }
}

bool DataLoader::make_sample(std::size_t index, std::size_t position, std::int64_t epoch, float* out) {
  const std::shared_ptr<const Image> image = load(index);
  if (!image) return false;
  if (!options_.augmentation || !options_.augmentation->any()) {
    const Tensor chw = preprocessing_.apply(*image);
    std::copy_n(chw.data<float>(), chw.numel(), out);
    return true;
  }
  // Keyed by sample, or by draw when balanced sampling may repeat a sample within the epoch.
  const Augmentation& augmentation = *options_.augmentation;
  const std::size_t key = options_.balanced_sampling ? position : index;
  const kernels::PhiloxState state{options_.seed, kAugmentationStream + static_cast<std::uint64_t>(epoch),
                                   key * kernels::philox_blocks_for(draws_per_sample(augmentation))};
  // The resized crop moves the window the preprocessing resamples; the rest acts on its result.
  Tensor chw =
      preprocessing_.apply(*image, resized_crop_window(preprocessing_.window(*image), augmentation, state));
  augment(chw, augmentation, preprocessing_, state);
  std::copy_n(chw.data<float>(), chw.numel(), out);
  return true;
}

Batch DataLoader::make_batch(const std::vector<std::size_t>& samples, std::size_t first_position,
                             std::int64_t epoch, std::uint64_t generation) {
  const std::int64_t channels = preprocessing_.channels, height = preprocessing_.height,
                     width = preprocessing_.width;
  const std::int64_t image_size = channels * height * width,
                     count = static_cast<std::int64_t>(samples.size());

  // Each sample into its own slot of the batch. Without worker threads the batch is made here, between
  // training steps, on the compute threads (OpenMP); workers make theirs one sample at a time.
  Tensor images = Tensor::empty({count, channels, height, width});
  std::vector<char> made(samples.size(), 0);
  std::vector<std::exception_ptr> errors(samples.size());
#pragma omp parallel for schedule(dynamic) if (options_.threads == 0)
  for (std::int64_t k = 0; k < count; ++k) {
    const auto slot = static_cast<std::size_t>(k);
    if (generation != generation_) continue;  // the epoch moved on or the loader is closing
    try {
      made[slot] =
          make_sample(samples[slot], first_position + slot, epoch, images.data<float>() + k * image_size);
    } catch (...) {
      errors[slot] = std::current_exception();
    }
  }
  if (generation != generation_) return {};
  for (const std::exception_ptr& error : errors)  // the first in the batch's order
    if (error) std::rethrow_exception(error);

  // The samples made, in order, closing the gaps of skipped files.
  const auto label_count = static_cast<std::size_t>(folder_.multi_label() ? folder_.classes().size() : 0);
  std::vector<std::int64_t> labels;
  std::vector<float> targets;  // [kept samples, label_count], multi-hot
  Batch batch;
  for (std::size_t k = 0; k < samples.size(); ++k) {
    if (!made[k]) continue;
    const auto kept = static_cast<std::int64_t>(batch.indices.size());
    float* const base = images.data<float>();
    if (kept != static_cast<std::int64_t>(k))
      std::copy_n(base + static_cast<std::int64_t>(k) * image_size, image_size, base + kept * image_size);
    const std::size_t index = samples[k];
    labels.push_back(folder_.samples()[index].label);
    if (label_count > 0) {
      targets.resize(targets.size() + label_count, 0.0f);
      for (const std::int64_t label : folder_.samples()[index].labels) {
        targets[targets.size() - label_count + static_cast<std::size_t>(label)] = 1.0f;
      }
    }
    batch.indices.push_back(index);
  }
  if (batch.indices.empty()) return {};

  const auto kept = static_cast<std::int64_t>(batch.indices.size());
  if (kept < count) {
    // Some files were skipped: copy the kept images into a batch of the right size.
    Tensor shorter = Tensor::empty({kept, channels, height, width});
    std::copy_n(images.data<float>(), kept * image_size, shorter.data<float>());
    images = shorter;
  }
  batch.images = options_.channels_last ? images.channels_last() : images;
  batch.labels = Tensor::from_vector(labels, {kept});
  if (label_count > 0)
    batch.targets = Tensor::from_vector(targets, {kept, static_cast<std::int64_t>(label_count)});
  return batch;
}

namespace {

// The memory limit of the control group the process runs in (a container's), in bytes, or -1 where there is
// none: cgroup v2's memory.max ("max" when unlimited), else v1's memory.limit_in_bytes (a huge number then).
std::int64_t cgroup_memory_limit() {
  for (const char* file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(file);
    long long limit = 0;
    if (in >> limit && limit > 0) return static_cast<std::int64_t>(limit);
  }
  return -1;
}

}  // namespace

std::int64_t default_cache_budget_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  std::int64_t memory = pages > 0 && page_size > 0 ? static_cast<std::int64_t>(pages) * page_size : -1;
  const std::int64_t limit = cgroup_memory_limit();
  if (limit > 0 && (memory < 0 || limit < memory)) memory = limit;
  return memory > 0 ? memory / 4 : std::int64_t{1} << 30;
}

std::shared_ptr<const Image> DataLoader::load(std::size_t index) {
  {
    std::lock_guard lock(cache_mutex_);
    if (cache_[index]) return cache_[index];
    // A file already found unreadable is not read again (with strict, it is, to throw its error).
    if (!options_.strict && unreadable_.contains(index)) return nullptr;
  }
  std::shared_ptr<const Image> image;
  try {
    image = std::make_shared<const Image>(folder_.decode(index));
  } catch (const Error& error) {
    if (options_.strict) throw;
    std::lock_guard lock(cache_mutex_);
    if (unreadable_.contains(index)) return nullptr;
    const std::string warning = std::string(error.what()) + "; skipped";
    unreadable_.emplace(index, warning);
    warnings_.push_back(warning);
    std::fprintf(stderr, "kiln: warning: %s\n", warning.c_str());
    return nullptr;
  }
  if (options_.cache_decoded) {
    const auto bytes = static_cast<std::int64_t>(image->pixels.size());
    std::lock_guard lock(cache_mutex_);
    if (cache_[index]) return cache_[index];  // another thread decoded it meanwhile
    if (cached_bytes_ + bytes <= cache_budget_bytes_) {
      cache_[index] = image;
      cached_bytes_ += bytes;
    } else if (!cache_full_) {
      cache_full_ = true;
      std::fprintf(
          stderr,
          "kiln: warning: %s: the decoded images outgrow the %.1f GiB kept in memory (%s is %lld x "
          "%lld); the rest are decoded again every epoch, which is slower: `kiln pack --shorter-side "
          "N` stores them shrunk, decoded once\n",
          folder_.root().string().c_str(), static_cast<double>(cache_budget_bytes_) / (1 << 30),
          folder_.samples()[index].path.filename().string().c_str(), static_cast<long long>(image->width),
          static_cast<long long>(image->height));
    }
  }
  return image;
}

}  // namespace kiln::data
