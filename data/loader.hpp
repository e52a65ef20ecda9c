// DataLoader: batches of preprocessed (and, for training, augmented) images from an ImageFolder, made
// ahead of time on a pool of threads.
//
//   DataLoader loader(folder, preprocessing, {.batch_size = 128, .seed = 7});
//   for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (std::optional<Batch> batch = loader.next()) train_step(batch->images, batch->labels);
//   }
//
// Reproducibility. An epoch's order is a permutation drawn from (seed, epoch) (or the folder's order
// without shuffle), and a sample's augmentation from (seed, epoch, sample index); batches come out in
// that order whatever the threads do. So the same seed and epoch give the same batches, bit for bit, at
// any thread count, and a run resumed at epoch k sees what it would have seen.
//
// Balanced sampling. With balanced_sampling, an epoch is instead size() draws with replacement from
// (seed, epoch), each class equally likely (data/balanced_sampler.hpp). A sample may then come up twice in
// an epoch, so its augmentation is drawn from (seed, epoch, position in the epoch) rather than the sample
// index: each copy gets its own crop and flip.
//
// Threads. `threads` workers each claim the next batch number, decode, preprocess and augment its
// samples, and file the result under its number; next() hands out batch 0, 1, 2, ... as each is done.
// At most max(prefetch_batches, threads) batches are made ahead of the one next() last returned, which
// bounds the memory held. threads = 0 makes each batch inside next(), its samples spread over the compute
// threads (OpenMP): between training steps rather than beside them, which on a CPU that trains on every
// core is faster (workers beside the step take cores from its threads mid-kernel; train/trainer.hpp's
// loader_threads). One thread calls start_epoch and next(). Destroying the loader, or starting a new epoch,
// while workers are busy is safe: they drop what they were making.
//
// Unreadable files. A file that does not decode is, by default, skipped: the batch holding it is one
// shorter, the file is named in warnings() and on stderr (once per file), and skipped_files() counts
// it. A batch whose every file was skipped is not returned at all. With strict, next() throws the
// decode error (kiln::Error naming the file) when it reaches that batch.
//
// Caching. With cache_decoded, each image is decoded once and its 8-bit pixels kept in memory for later
// epochs (height * width * channels bytes per image); preprocessing and augmentation still run every
// epoch. The cache holds at most cache_budget_bytes (by default a quarter of the machine's memory): a folder
// of camera photos decodes to 36 MB an image at 12 megapixels, so two thousand of them would take 72 GB and
// the training process would be killed for memory. Past the budget, images are decoded again each epoch
// (the same pixels: only slower), and stderr says so once, pointing to `kiln pack --shorter-side`, which
// stores them shrunk.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.hpp"
#include "data/augment.hpp"
#include "data/dataset.hpp"
#include "data/image.hpp"
#include "data/preprocessing.hpp"

namespace kiln::data {

struct Batch {
  Tensor images;                     // float32 [B, C, H, W]
  Tensor labels;                     // int64 [B]; all -1 for a multi-label folder
  std::vector<std::size_t> indices;  // [B] the samples' indices in the folder
  // Multi-label folders only (data/label_table.hpp): float32 [B, L], targets[b][l] = 1 when label l
  // applies to image b, else 0 (multi-hot); undefined for a single-label folder.
  Tensor targets;
};

struct LoaderOptions {
  std::int64_t batch_size = 128;
  bool shuffle = true;     // a new seeded order each epoch; false: the folder's order
  // Draw each epoch with replacement, every class equally likely (data/balanced_sampler.hpp); over shuffle.
  // Single-label folders only: a multi-label image has no one class to balance by.
  bool balanced_sampling = false;
  bool drop_last = false;  // leave out the last batch when it is short
  std::uint64_t seed = 0;  // drives the order and the augmentation
  int threads = 2;         // worker threads; 0 = make batches inside next(), on the compute threads
  int prefetch_batches = 2;
  bool cache_decoded = true;  // keep decoded images in memory across epochs
  // The most bytes of decoded pixels the cache keeps; < 0: default_cache_budget_bytes().
  std::int64_t cache_budget_bytes = -1;
  bool strict = false;        // an unreadable file is an error rather than skipped
  std::optional<Augmentation> augmentation = std::nullopt;  // for training; none for evaluation
  // Batches' images stored channels-last (Tensor::channels_last: [N, C, H, W] with [N, H, W, C] in memory),
  // which the CPU kernels keep through a model; converted on the loader's threads, off the training step.
  bool channels_last = false;

  // Every image once, in the folder's order, unaugmented: how evaluation and calibration read.
  static LoaderOptions in_order(std::int64_t batch_size, int threads, bool strict) {
    LoaderOptions options;
    options.batch_size = batch_size;
    options.shuffle = false;
    options.threads = threads;
    options.strict = strict;
    return options;
  }
};

// A quarter of the memory the process may use: the machine's physical memory, or its control group's
// limit where that is lower (a container's); 1 GiB where neither says.
std::int64_t default_cache_budget_bytes();

class DataLoader {
 public:
  DataLoader(const ImageFolder& folder, Preprocessing preprocessing, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Begins epoch `epoch` (>= 0): fixes its order and sets the workers going. Work left over from an
  // unfinished epoch is dropped.
  void start_epoch(std::int64_t epoch);

  // The epoch's next batch, or nothing once the epoch is done. Throws what making the batch threw (with
  // strict, the error naming an unreadable file).
  std::optional<Batch> next();

  // Batches in an epoch: ceil(size / batch_size), or floor with drop_last. Skipped files can make a
  // batch short, or (when all of its files are skipped) leave it out, so next() may return fewer.
  std::int64_t batches_per_epoch() const;
  // Files found unreadable so far (each counted once, in any epoch).
  std::int64_t skipped_files() const;
  // One line per unreadable file: "<path>: not an image (stb_image: ...); skipped".
  std::vector<std::string> warnings() const;
  // Bytes of decoded pixels the cache holds, at most LoaderOptions::cache_budget_bytes.
  std::int64_t cached_bytes() const;

  const ImageFolder& folder() const { return folder_; }
  const Preprocessing& preprocessing() const { return preprocessing_; }
  const LoaderOptions& options() const { return options_; }

 private:
  // A batch a worker finished: the batch, or the error that stopped it.
  struct Finished {
    Batch batch;
    std::exception_ptr error;
  };

  std::vector<std::size_t> batch_samples(std::int64_t batch) const;  // needs mutex_ held (reads order_)
  std::size_t first_position(std::int64_t batch) const;              // of the batch's first sample
  bool can_claim() const;                                            // needs mutex_ held
  void work();                                                       // a worker thread's loop
  // Makes the batch of these samples, the first of which is at `first_position` in the epoch's order;
  // returns early (an empty batch) once `generation` is stale.
  Batch make_batch(const std::vector<std::size_t>& samples, std::size_t first_position, std::int64_t epoch,
                   std::uint64_t generation);
  // Sample `index`, at `position` in the epoch's order, decoded, preprocessed and augmented into out (its
  // channels x height x width floats); false when its file is skipped.
  bool make_sample(std::size_t index, std::size_t position, std::int64_t epoch, float* out);
  // The decoded image of sample `index` (from the cache when there), or null when it is skipped.
  std::shared_ptr<const Image> load(std::size_t index);

  const ImageFolder folder_;
  const Preprocessing preprocessing_;
  const LoaderOptions options_;

  // The epoch in progress; guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable work_available_;  // workers wait here for a batch to claim
  std::condition_variable batch_finished_;  // next() waits here for its batch
  std::int64_t epoch_ = -1;
  std::vector<std::size_t> order_;  // sample indices in this epoch's order
  std::int64_t batch_count_ = 0, next_to_claim_ = 0, next_to_return_ = 0;
  std::map<std::int64_t, Finished> finished_;  // by batch number, waiting for next()
  // Bumped by start_epoch and the destructor; a worker whose batch is of an older generation drops it.
  // Written under mutex_, read without it by workers checking between samples.
  std::atomic<std::uint64_t> generation_ = 0;
  std::atomic<bool> stopping_ = false;
  std::vector<std::thread> workers_;

  // Decoded images and unreadable files; guarded by cache_mutex_.
  mutable std::mutex cache_mutex_;
  std::vector<std::shared_ptr<const Image>> cache_;  // [folder size]; null until decoded (or past the budget)
  std::int64_t cache_budget_bytes_ = 0, cached_bytes_ = 0;
  bool cache_full_ = false;  // an image was left out of the cache for the budget (said once on stderr)
  std::map<std::size_t, std::string> unreadable_;    // sample index -> its warning
  std::vector<std::string> warnings_;                // in the order found
};

}  // namespace kiln::data
