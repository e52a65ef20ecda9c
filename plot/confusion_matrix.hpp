// A confusion matrix as a picture: rows are the true classes, columns the predicted ones, each cell
// shaded by the share of its row (white = none of the class, dark blue = all of it) and labelled with its
// count, so the diagonal shows each class's recall and the bright off-diagonal cells show what the model
// confuses with what.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plot/canvas.hpp"

namespace kiln::plot {

// counts[true][predicted], square, one row and column per class name. Throws kiln::Error on a shape that
// does not match the names.
Canvas draw_confusion_matrix(const std::vector<std::vector<std::int64_t>>& counts,
                             const std::vector<std::string>& classes, const std::string& title);

}  // namespace kiln::plot
