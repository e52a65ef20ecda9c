// Labels files: a multi-label data set described by a CSV file rather than by class folders.
//
//   # attributes of the CIFAR-10 subset's training images
//   images/0001.jpg,animal,pet,four_legs
//   images/0002.jpg,vehicle,road
//   "images/with, comma.png",animal
//   images/0003.jpg
//
// One row per image: its path, then any number of labels (none: no label applies to the image). A path
// is relative to the labels file's folder, or absolute. Fields may be quoted ("a, b" keeps its comma;
// "" inside quotes is one "); spaces around an unquoted field are trimmed. Blank lines and lines whose
// first character (after spaces) is # are ignored. Rows keep the file's order.
//
// The label vocabulary is the sorted set of every label of the training file: label i is vocabulary[i],
// the model's output i. A sample's target is then a multi-hot vector [L] (data/loader.hpp).
//
// Reading checks each row and throws kiln::Error naming the file and the line: an empty path, an image
// that does not exist or has no image extension, an image listed twice, an empty label field, a label
// listed twice on one row (an error rather than silently merged, since it is most likely a typo for
// another label). A file with no rows, or whose rows name no label at all, is an error too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace kiln::data {

struct LabelRow {
  std::filesystem::path image;      // resolved: absolute, or the labels file's folder / the given path
  std::vector<std::string> labels;  // in the row's order, each once
  std::int64_t line = 0;            // 1-based line of the file, for messages
};

struct LabelTable {
  std::filesystem::path file;
  std::vector<LabelRow> rows;  // in the file's order
};

// Whether `path` names a labels file: its extension is .csv (any letter case).
bool is_label_file(const std::filesystem::path& path);

// Reads and checks a labels file (see above).
LabelTable read_label_table(const std::filesystem::path& file);

// The sorted set of the labels `table` uses. Throws when there is none.
std::vector<std::string> label_vocabulary(const LabelTable& table);

// The table as a multi-label ImageFolder over `vocabulary` (root: the labels file). Throws naming the
// file and line of a label that is not in the vocabulary (a test file's label the training file never
// uses: the model has no output for it).
ImageFolder multi_label_folder(const LabelTable& table, const std::vector<std::string>& vocabulary);

// The splits of a multi-label data set whose training rows are in `file`:
//   - the vocabulary is the training file's labels;
//   - a file named train.csv has siblings: val.csv and test.csv in the same folder, when present, are the
//     validation and test sets (the layout of root/{train,val,test}/ folders, as files);
//   - without a validation file, val_split in (0, 1) holds out that fraction of the training rows
//     (rounded, at least one, always leaving one), drawn from `seed`: a plain random split, not
//     stratified (with several labels per image there is no single class to stratify by), the held-out
//     rows kept in the file's order. val_split = 0 gives no validation set.
DataSplits label_file_splits(const std::filesystem::path& file, double val_split, std::uint64_t seed);

}  // namespace kiln::data
