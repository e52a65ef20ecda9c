// Class imbalance in training: how uneven the training split is, the warning `kiln train` gives when it is
// too uneven, and the loss weights of `--class-weights auto|FILE`.
//
// A model trained on 900 cats and 100 dogs scores 90% accuracy by always answering "cat". Two remedies,
// either of which kiln train applies on request (not both):
//   --class-weights  weighs each sample's loss by its class's weight (cross_entropy's class_weight, a
//                    weighted mean), so a rare class's mistakes cost more;
//   --balanced-sampler  draws each epoch with replacement, every class equally likely
//                    (data/balanced_sampler.hpp), so the model sees the classes equally often.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace kiln::train {

// kiln train warns when the largest training class has more than this many times the images of the
// smallest. 1.5 lets ordinary unevenness (a class with 20% fewer images) pass quietly.
inline constexpr double kImbalanceWarningRatio = 1.5;

struct ClassBalance {
  std::vector<std::string> classes;
  std::vector<std::int64_t> counts;       // [classes] training images per class
  std::size_t largest = 0, smallest = 0;  // class indices; the first on ties
  double ratio = 1;                       // counts[largest] / counts[smallest]

  bool imbalanced() const { return ratio > kImbalanceWarningRatio; }
  // {"counts": {class: images}, "largest": {name, images}, "smallest": {name, images}, "ratio",
  //  "threshold", "imbalanced", "summary"}
  nlohmann::json to_json() const;
  // "largest 'cat' 900 images, smallest 'dog' 100 (ratio 9.00 > 1.5); per class: cat 900, dog 100";
  // the per-class list is left out beyond 12 classes.
  std::string summary() const;
};

// The balance of a folder's samples. Throws kiln::Error when a class has no samples.
ClassBalance class_balance(const data::ImageFolder& folder);

// --class-weights auto: inverse class frequency, normalized so the weights average 1 over the classes:
//     w_c = (1 / n_c) / ((1 / C) * sum_k 1 / n_k)
// with n_c the training images of class c and C the number of classes. Balanced data gets all ones; with
// 900 cats and 100 dogs, w_cat = 0.2 and w_dog = 1.8, so the dogs weigh as much in total as the cats
// (900 * 0.2 = 100 * 1.8). Throws kiln::Error when a count is not positive.
std::vector<double> auto_class_weights(const std::vector<std::int64_t>& counts);

// --class-weights FILE: one "class,weight" per line, in any order, e.g.
//     # class,weight
//     cat,0.5
//     dog,2
// A comma or whitespace separates the two (the last one on the line, so a class name may hold spaces);
// blank lines and text after '#' are ignored, and a first line "class,weight" is taken as a header. Every
// class needs exactly one weight, a finite number > 0. Errors (kiln::Error) start with `name_for_errors`
// and name the line and class: an unknown class (listing the known ones), a class given twice, a weight
// that is not a positive number, a line without a weight, and the classes without a weight.
std::vector<double> parse_class_weights(const std::string& text, const std::vector<std::string>& classes,
                                        const std::string& name_for_errors);
std::vector<double> read_class_weights_file(const std::filesystem::path& path,
                                            const std::vector<std::string>& classes);

// --class-weights as given: "" (none: returns empty), "auto", or a file.
std::vector<double> resolve_class_weights(const std::string& spec, const ClassBalance& balance);

}  // namespace kiln::train
