// ImageFolder: a labelled image data set laid out as one folder per class, and the discovery of its
// train / validation / test splits.
//
//   root/
//     cat/  0001.jpg 0002.png ...
//     dog/  a.jpg b.JPEG ...
//
// A sample's label is the index of its folder's name in the sorted list of class names: labels come
// from folder names only, never from file names. Image files are recognized by extension
// (is_image_file: jpg jpeg png bmp tga, any letter case) and sorted by name within a class, so a folder
// always lists the same samples in the same order. Other files, hidden folders (".git") and folders
// nested inside a class folder are ignored.
//
// A multi-label data set (data/label_table.hpp) is an ImageFolder too, made from a labels file rather
// than scanned: there classes() are the label names, each sample lists the labels that apply, and
// task() is Task::MultiLabel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/image.hpp"

namespace kiln::data {

struct Sample {
  std::filesystem::path path;     // for a pack's image: PACK/<split>/<class>/<name>, for messages only
  std::int64_t label;             // index into ImageFolder::classes(); -1 for a multi-label sample
  std::int64_t pack_entry = -1;   // the image's entry in the folder's pack; -1: a file at `path`
  std::vector<std::int64_t> labels = {};  // multi-label: the indices of the labels that apply, ascending
};

// Single-label: each image shows one of the classes (a softmax over them). Multi-label: any number of
// the labels applies to an image (one sigmoid per label).
enum class Task { SingleLabel, MultiLabel };

class Pack;

class ImageFolder {
 public:
  ImageFolder() = default;
  // `pack` holds the samples' bytes when they come from a pack (pack.hpp), else it is null.
  ImageFolder(std::filesystem::path root, std::vector<std::string> classes, std::vector<Sample> samples,
              std::shared_ptr<const Pack> pack = nullptr, Task task = Task::SingleLabel);

  // How many classes a scanned folder must hold: a classifier trains on two or more; a model is evaluated on
  // a folder of any of its classes, one included (all cats: how many does it call cats?).
  enum class ClassesNeeded { Two, One };

  // Lists root/<class>/<image>. Throws kiln::Error naming the path when root is missing or unreadable,
  // holds no class folders, holds a single class where two are needed ("needs at least two classes"), or a
  // class folder holds no image files ("empty class folder").
  static ImageFolder scan(const std::filesystem::path& root, ClassesNeeded needed = ClassesNeeded::Two);

  // The samples at `indices` (in that order), with the same root and classes. Throws on an index out of
  // range.
  ImageFolder subset(const std::vector<std::size_t>& indices) const;

  // The same single-label samples, labelled by their class's index in `classes` (a model's, in its output
  // order), which must name every class of this folder: a folder of some of a model's classes, relabelled,
  // means to the model what its images are. Throws naming a class `classes` lacks, and the classes.
  ImageFolder relabelled(const std::vector<std::string>& classes) const;

  // Decodes sample `index`, from its file or from the pack. Throws kiln::Error naming the image when it is
  // missing, unreadable or not an image.
  Image decode(std::size_t index) const;

  const std::filesystem::path& root() const { return root_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<Sample>& samples() const { return samples_; }
  std::size_t size() const { return samples_.size(); }
  Task task() const { return task_; }
  bool multi_label() const { return task_ == Task::MultiLabel; }

 private:
  std::filesystem::path root_;
  std::vector<std::string> classes_;  // label i is classes_[i]; sorted, unless relabelled
  std::vector<Sample> samples_;       // by class, then by file name
  std::shared_ptr<const Pack> pack_;  // null for a folder on disk
  Task task_ = Task::SingleLabel;
};

struct DataSplits {
  ImageFolder train;
  std::optional<ImageFolder> validation;
  std::optional<ImageFolder> test;
};

// Finds the splits under `root`, in one of two layouts, or in a pack file (pack.hpp) made from either:
//
//   root/train/<class>/...  [root/val/<class>/...]  [root/test/<class>/...]
//     The folders are the splits. Every split must list the same classes as train (the error names the
//     class that differs), so a label means the same class in each. Without root/val, val_split carves
//     the validation set out of root/train as below; with root/val, the folder is used and val_split is
//     ignored.
//
//   root/<class>/...
//     The whole tree is the training data. val_split in (0, 1) moves that fraction of each class's
//     images (rounded, at least one, always leaving one for training) into the validation set: a
//     stratified split, drawn from `seed`, so the same seed always gives the same split. val_split = 0
//     gives no validation set.
//
// A `root` whose name ends in .csv is a labels file instead: a multi-label data set, whose splits
// data/label_table.hpp describes (label_file_splits).
//
// Both halves of a split keep the folder's order (by class, then by name).
DataSplits discover_splits(const std::filesystem::path& root, double val_split, std::uint64_t seed);

}  // namespace kiln::data
