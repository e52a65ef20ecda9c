#include "data/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <utility>

#include "core/error.hpp"
#include "data/folder_listing.hpp"
#include "data/image.hpp"
#include "data/label_table.hpp"
#include "data/pack.hpp"
#include "data/shuffle.hpp"

namespace kiln::data {

namespace {

namespace fs = std::filesystem;


// Per-class sample indices of `folder`: result[label] lists the indices of that class's samples.
std::vector<std::vector<std::size_t>> indices_by_class(const ImageFolder& folder) {
  std::vector<std::vector<std::size_t>> by_class(folder.classes().size());
  for (std::size_t i = 0; i < folder.size(); ++i) {
    by_class[static_cast<std::size_t>(folder.samples()[i].label)].push_back(i);
  }
  return by_class;
}

// Splits `folder` into (train, validation), taking the fraction val_split of each class at random.
std::pair<ImageFolder, ImageFolder> stratified_split(const ImageFolder& folder, double val_split,
                                                     std::uint64_t seed) {
  std::vector<std::size_t> train_indices, validation_indices;
  const std::vector<std::vector<std::size_t>> by_class = indices_by_class(folder);
  for (std::size_t label = 0; label < by_class.size(); ++label) {
    const std::vector<std::size_t>& members = by_class[label];
    // Each class draws from its own part of the stream (2^30 blocks = 2^32 draws apart), so a class's
    // split does not depend on the sizes of the classes before it.
    const kernels::PhiloxState state{seed, kValidationSplitStream, label << 30};
    const std::vector<std::size_t> order = seeded_permutation(members.size(), state);
    const auto count = static_cast<std::int64_t>(members.size());
    const std::int64_t taken =
        count < 2
            ? 0
            : std::clamp<std::int64_t>(std::llround(val_split * static_cast<double>(count)), 1, count - 1);
    for (std::int64_t k = 0; k < count; ++k) {
      const std::size_t index = members[order[static_cast<std::size_t>(k)]];
      (k < taken ? validation_indices : train_indices).push_back(index);
    }
  }
  // Keep the folder's order within each half.
  std::sort(train_indices.begin(), train_indices.end());
  std::sort(validation_indices.begin(), validation_indices.end());
  return {folder.subset(train_indices), folder.subset(validation_indices)};
}

// Throws naming the first class in which `split` and `train` differ.
void check_same_classes(const ImageFolder& train, const ImageFolder& split) {
  const std::vector<std::string>& expected = train.classes();
  const std::vector<std::string>& found = split.classes();
  if (expected == found) return;
  for (const std::string& name : found) {
    KILN_CHECK(std::find(expected.begin(), expected.end(), name) != expected.end(), split.root().string(),
               ": class '", name, "' is not a class of ", train.root().string());
  }
  for (const std::string& name : expected) {
    KILN_CHECK(std::find(found.begin(), found.end(), name) != found.end(), split.root().string(), ": class '",
               name, "' of ", train.root().string(), " is missing");
  }
}

// The pack's images of split `name` ("" for a pack of a one-tree folder), in the pack's order (the
// folder's: by class, then by name).
ImageFolder pack_split(const std::shared_ptr<const Pack>& pack, const std::string& name) {
  std::vector<Sample> samples;
  for (std::size_t i = 0; i < pack->entries().size(); ++i) {
    const Pack::Entry& entry = pack->entries()[i];
    if (entry.split != name) continue;
    fs::path shown = pack->file();
    if (!name.empty()) shown /= name;
    shown /= pack->classes()[static_cast<std::size_t>(entry.label)];
    samples.push_back({shown / entry.name, entry.label, static_cast<std::int64_t>(i)});
  }
  fs::path root = pack->file();
  if (!name.empty()) root /= name;
  return ImageFolder(root, pack->classes(), std::move(samples), pack);
}

// Up to three of the paths' file names (or, given `relative_to`, their paths from there), comma-separated,
// then "..." if there are more.
std::string first_names(const std::vector<fs::path>& paths, const fs::path& relative_to = {}) {
  std::string names;
  for (std::size_t i = 0; i < std::min<std::size_t>(paths.size(), 3); ++i) {
    const fs::path name =
        relative_to.empty() ? paths[i].filename() : paths[i].lexically_relative(relative_to);
    names += (i == 0 ? "" : ", ") + name.string();
  }
  if (paths.size() > 3) names += ", ...";
  return names;
}

// What a class folder without images holds instead, for its error: files of formats kiln does not read
// (a phone's .heic, a .webp), by extension, or folders (images one level too deep), or nothing at all.
std::string what_an_empty_class_folder_holds(const fs::path& class_folder) {
  const std::vector<fs::path> files = sorted_entries(class_folder, [](const fs::directory_entry& entry) {
    std::error_code ignored;
    return entry.is_regular_file(ignored) && !is_hidden(entry.path());
  });
  const std::vector<fs::path> folders = sorted_subfolders(class_folder);
  if (!files.empty()) {
    return "it holds " + describe_extensions(count_extensions(files)) + " file" +
           (files.size() == 1 ? "" : "s") + ", formats kiln does not read: convert them to JPEG or PNG";
  }
  if (!folders.empty()) {
    return "it holds " + std::to_string(folders.size()) + " folder" + (folders.size() == 1 ? "" : "s") +
           " (" + first_names(folders) + "): a class's images go directly in its folder";
  }
  return "it is empty";
}

// A folder inside a class folder is not read (the layout is root/<class>/<image>); say so, naming up to
// three, so that images put there are not lost without a word.
void warn_of_nested_folders(const fs::path& class_folder) {
  const std::vector<fs::path> nested = sorted_subfolders(class_folder);
  if (nested.empty()) return;
  const std::string names = first_names(nested);
  std::fprintf(stderr,
               "kiln: warning: %s holds %zu folder%s (%s) whose images are not read: a class's images go "
               "directly in its folder\n",
               class_folder.string().c_str(), nested.size(), nested.size() == 1 ? "" : "s", names.c_str());
}

// Files of other formats beside a class's images are left out of training; say so once for the split, by
// extension and with the first few named, so that a phone's .heic photos do not silently drop out of a class.
void warn_of_unread_files(const fs::path& root, const std::vector<fs::path>& unread) {
  if (unread.empty()) return;
  const std::string names = first_names(unread, root);
  std::fprintf(stderr,
               "kiln: warning: %s: %zu file%s in class folders %s not read and left out (%s: %s); kiln reads "
               ".jpg .jpeg .png .bmp and .tga: convert other images to JPEG or PNG\n",
               root.string().c_str(), unread.size(), unread.size() == 1 ? "" : "s",
               unread.size() == 1 ? "is" : "are", describe_extensions(count_extensions(unread)).c_str(),
               names.c_str());
}

}  // namespace

ImageFolder::ImageFolder(std::filesystem::path root, std::vector<std::string> classes,
                         std::vector<Sample> samples, std::shared_ptr<const Pack> pack, Task task)
    : root_(std::move(root)),
      classes_(std::move(classes)),
      samples_(std::move(samples)),
      pack_(std::move(pack)),
      task_(task) {}

Image ImageFolder::decode(std::size_t index) const {
  const Sample& sample = samples_.at(index);
  if (sample.pack_entry < 0) return decode_image_file(sample.path);
  return decode_image_bytes(pack_->bytes(static_cast<std::size_t>(sample.pack_entry)), sample.path.string());
}

ImageFolder ImageFolder::scan(const std::filesystem::path& root, ClassesNeeded needed) {
  std::error_code status;
  KILN_CHECK(fs::exists(root, status), root.string(), ": image folder does not exist");
  KILN_CHECK(fs::is_directory(root, status), root.string(),
             ": is not a folder (expected <root>/<class>/<image>)");

  const std::vector<fs::path> class_folders = sorted_subfolders(root);
  KILN_CHECK(!class_folders.empty(), root.string(),
             ": no class folders (expected one folder per class: <root>/<class>/<image>)");
  KILN_CHECK(class_folders.size() >= 2 || needed == ClassesNeeded::One, root.string(),
             ": needs at least two classes, found only '", class_folders.front().filename().string(), "'");

  std::vector<std::string> classes;
  std::vector<Sample> samples;
  std::vector<fs::path> unread;  // files in class folders that are not images kiln reads
  for (const fs::path& class_folder : class_folders) {
    const auto label = static_cast<std::int64_t>(classes.size());
    classes.push_back(class_folder.filename().string());
    std::vector<fs::path> files = sorted_entries(class_folder, [](const fs::directory_entry& entry) {
      std::error_code ignored;
      return entry.is_regular_file(ignored) && !is_hidden(entry.path());
    });
    const auto first_other = std::stable_partition(files.begin(), files.end(), is_image_file);
    KILN_CHECK(first_other != files.begin(), class_folder.string(),
               ": empty class folder (no .jpg .jpeg .png .bmp or .tga files; ",
               what_an_empty_class_folder_holds(class_folder), ")");
    warn_of_nested_folders(class_folder);
    for (auto image = files.begin(); image != first_other; ++image) samples.push_back({*image, label});
    unread.insert(unread.end(), first_other, files.end());
  }
  warn_of_unread_files(root, unread);
  return ImageFolder(root, std::move(classes), std::move(samples));
}

ImageFolder ImageFolder::subset(const std::vector<std::size_t>& indices) const {
  std::vector<Sample> chosen;
  chosen.reserve(indices.size());
  for (const std::size_t index : indices) {
    KILN_CHECK(index < samples_.size(), root_.string(), ": subset index ", index, " is out of range for ",
               samples_.size(), " samples");
    chosen.push_back(samples_[index]);
  }
  return ImageFolder(root_, classes_, std::move(chosen), pack_, task_);
}

ImageFolder ImageFolder::relabelled(const std::vector<std::string>& classes) const {
  KILN_CHECK(!multi_label(), root_.string(), ": a multi-label data set's labels are not relabelled by name");
  std::vector<std::int64_t> label_in(classes_.size());
  for (std::size_t i = 0; i < classes_.size(); ++i) {
    const auto found = std::find(classes.begin(), classes.end(), classes_[i]);
    if (found == classes.end()) {
      std::string known;  // the first ten, enough to see a misspelling or a wrong model
      for (std::size_t j = 0; j < classes.size() && j < 10; ++j) known += (j ? ", " : "") + classes[j];
      if (classes.size() > 10) known += ", ...";
      fail(root_.string(), ": class '", classes_[i], "' is not one of the ", classes.size(),
           " classes the model was trained with (", known, ")");
    }
    label_in[i] = found - classes.begin();
  }
  std::vector<Sample> samples = samples_;
  for (Sample& sample : samples) sample.label = label_in[static_cast<std::size_t>(sample.label)];
  return ImageFolder(root_, classes, std::move(samples), pack_, task_);
}

DataSplits discover_splits(const std::filesystem::path& root, double val_split, std::uint64_t seed) {
  KILN_CHECK(val_split >= 0.0 && val_split < 1.0, "val_split must be in [0, 1), got ", val_split);
  if (is_label_file(root)) return label_file_splits(root, val_split, seed);
  std::error_code status;
  const bool packed = Pack::is_pack(root);
  KILN_CHECK(packed || fs::is_directory(root, status), root.string(),
             ": data folder does not exist or is not a folder (or a kiln pack)");

  DataSplits splits;
  if (packed) {
    const std::shared_ptr<const Pack> pack = Pack::open(root);
    ImageFolder train = pack_split(pack, "train"), test = pack_split(pack, "test"), val = pack_split(pack, "val");
    if (train.size() > 0) {
      splits.train = std::move(train);
      if (test.size() > 0) splits.test = std::move(test);
      if (val.size() > 0) {
        splits.validation = std::move(val);
        return splits;
      }
    } else {
      splits.train = pack_split(pack, "");
    }
    KILN_CHECK(splits.train.size() > 0, root.string(), ": the pack holds no training images");
  } else if (fs::is_directory(root / "train", status)) {
    splits.train = ImageFolder::scan(root / "train");
    if (fs::is_directory(root / "test", status)) {
      splits.test = ImageFolder::scan(root / "test");
      check_same_classes(splits.train, *splits.test);
    }
    if (fs::is_directory(root / "val", status)) {
      splits.validation = ImageFolder::scan(root / "val");
      check_same_classes(splits.train, *splits.validation);
      return splits;
    }
  } else {
    splits.train = ImageFolder::scan(root);
  }
  if (val_split > 0.0) {
    auto [train, validation] = stratified_split(splits.train, val_split, seed);
    splits.train = std::move(train);
    if (validation.size() > 0) splits.validation = std::move(validation);  // none when each class has 1 image
  }
  return splits;
}

}  // namespace kiln::data
