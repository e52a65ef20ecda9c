#include "data/label_table.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "core/error.hpp"
#include "data/image.hpp"
#include "data/shuffle.hpp"

namespace kiln::data {

namespace {

namespace fs = std::filesystem;

std::string trimmed(const std::string& text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  const auto begin = std::find_if(text.begin(), text.end(), not_space);
  const auto end = std::find_if(text.rbegin(), text.rend(), not_space).base();
  return begin < end ? std::string(begin, end) : std::string();
}

// The comma-separated fields of one line. A field that starts (after spaces) with " runs to the next
// lone "; "" inside it is one ". `where` ("file:line") names the line in errors.
std::vector<std::string> split_fields(const std::string& line, const std::string& where) {
  std::vector<std::string> fields;
  std::size_t at = 0;
  while (true) {
    while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
    std::string field;
    if (at < line.size() && line[at] == '"') {
      ++at;
      while (true) {
        KILN_CHECK(at < line.size(), where, ": a quoted field has no closing quote");
        if (line[at] == '"' && at + 1 < line.size() && line[at + 1] == '"') {
          field += '"';
          at += 2;
        } else if (line[at] == '"') {
          ++at;
          break;
        } else {
          field += line[at++];
        }
      }
      while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
      KILN_CHECK(at == line.size() || line[at] == ',', where, ": text after a quoted field's closing quote");
    } else {
      const std::size_t comma = line.find(',', at);
      field = trimmed(line.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
      at = comma == std::string::npos ? line.size() : comma;
    }
    fields.push_back(std::move(field));
    if (at >= line.size()) return fields;
    ++at;  // past the comma: another field follows, possibly empty
  }
}

// One row's fields as a LabelRow, checked. `first_line_of` maps each image already listed to its line.
LabelRow parse_row(const std::vector<std::string>& fields, const fs::path& file, std::int64_t line,
                   std::map<fs::path, std::int64_t>& first_line_of) {
  const std::string where = file.string() + ":" + std::to_string(line);
  KILN_CHECK(!fields.front().empty(), where, ": empty image path (a row is: path,label[,label...])");
  const fs::path given = fields.front();
  const fs::path image = (given.is_absolute() ? given : file.parent_path() / given).lexically_normal();
  std::error_code status;
  KILN_CHECK(fs::is_regular_file(image, status), where, ": image '", given.string(),
             "' does not exist (looked for ", image.string(), ")");
  KILN_CHECK(is_image_file(image), where, ": '", given.string(),
             "' is not an image file (.jpg .jpeg .png .bmp or .tga)");
  const auto [earlier, inserted] = first_line_of.emplace(image, line);
  KILN_CHECK(inserted, where, ": image '", given.string(), "' is listed twice (first on line ",
             earlier->second, ")");

  LabelRow row{image, {}, line};
  for (std::size_t k = 1; k < fields.size(); ++k) {
    const std::string& label = fields[k];
    KILN_CHECK(!label.empty(), where, ": empty label (field ", k + 1, "; a row is: path,label[,label...])");
    KILN_CHECK(std::find(row.labels.begin(), row.labels.end(), label) == row.labels.end(), where, ": label '",
               label, "' is listed twice");
    row.labels.push_back(label);
  }
  return row;
}

bool is_blank_or_comment(const std::string& line) {
  const std::string text = trimmed(line);
  return text.empty() || text.front() == '#';
}

}  // namespace

bool is_label_file(const std::filesystem::path& path) { return lowercase_extension(path) == ".csv"; }

LabelTable read_label_table(const std::filesystem::path& file) {
  std::error_code status;
  KILN_CHECK(fs::is_regular_file(file, status), file.string(), ": labels file does not exist");
  std::ifstream in(file, std::ios::binary);
  KILN_CHECK(in.good(), file.string(), ": cannot read the labels file");
  LabelTable table{file, {}};
  std::map<fs::path, std::int64_t> first_line_of;
  std::string line;
  for (std::int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a file saved with Windows line ends
    if (is_blank_or_comment(line)) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    table.rows.push_back(parse_row(split_fields(line, where), file, number, first_line_of));
  }
  KILN_CHECK(in.eof(), file.string(), ": reading the labels file failed");
  KILN_CHECK(!table.rows.empty(), file.string(), ": lists no images (a row is: path,label[,label...])");
  return table;
}

std::vector<std::string> label_vocabulary(const LabelTable& table) {
  std::set<std::string> seen;
  for (const LabelRow& row : table.rows) seen.insert(row.labels.begin(), row.labels.end());
  KILN_CHECK(
      !seen.empty(), table.file.string(),
      ": no row names a label; a multi-label data set needs at least one (a row is: path,label[,label...])");
  return {seen.begin(), seen.end()};
}

ImageFolder multi_label_folder(const LabelTable& table, const std::vector<std::string>& vocabulary) {
  std::vector<Sample> samples;
  samples.reserve(table.rows.size());
  for (const LabelRow& row : table.rows) {
    Sample sample{row.image, -1};
    for (const std::string& label : row.labels) {
      const auto found = std::lower_bound(vocabulary.begin(), vocabulary.end(), label);
      KILN_CHECK(found != vocabulary.end() && *found == label, table.file.string(), ":", row.line,
                 ": label '", label,
                 "' is not a label of the training data (the model has no output for it)");
      sample.labels.push_back(found - vocabulary.begin());
    }
    std::sort(sample.labels.begin(), sample.labels.end());
    samples.push_back(std::move(sample));
  }
  return ImageFolder(table.file, vocabulary, std::move(samples), nullptr, Task::MultiLabel);
}

DataSplits label_file_splits(const std::filesystem::path& file, double val_split, std::uint64_t seed) {
  KILN_CHECK(val_split >= 0.0 && val_split < 1.0, "val_split must be in [0, 1), got ", val_split);
  const LabelTable training = read_label_table(file);
  const std::vector<std::string> vocabulary = label_vocabulary(training);
  DataSplits splits{multi_label_folder(training, vocabulary), std::nullopt, std::nullopt};

  std::error_code status;
  const bool has_siblings = file.filename() == "train.csv";
  const fs::path test_file = file.parent_path() / "test.csv", val_file = file.parent_path() / "val.csv";
  if (has_siblings && fs::exists(test_file, status)) {
    splits.test = multi_label_folder(read_label_table(test_file), vocabulary);
  }
  if (has_siblings && fs::exists(val_file, status)) {
    splits.validation = multi_label_folder(read_label_table(val_file), vocabulary);
    return splits;
  }
  const auto count = static_cast<std::int64_t>(splits.train.size());
  if (val_split == 0.0 || count < 2) return splits;
  const std::int64_t taken =
      std::clamp<std::int64_t>(std::llround(val_split * static_cast<double>(count)), 1, count - 1);
  const std::vector<std::size_t> order =
      seeded_permutation(splits.train.size(), {seed, kValidationSplitStream, 0});
  std::vector<std::size_t> train_indices(order.begin() + taken, order.end());
  std::vector<std::size_t> validation_indices(order.begin(), order.begin() + taken);
  std::sort(train_indices.begin(), train_indices.end());  // keep the file's order within each half
  std::sort(validation_indices.begin(), validation_indices.end());
  splits.validation = splits.train.subset(validation_indices);
  splits.train = splits.train.subset(train_indices);
  return splits;
}

}  // namespace kiln::data
