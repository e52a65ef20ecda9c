#include "layers/dropout.hpp"

#include <sstream>

namespace kiln::layers {

Dropout::Dropout(double p, Generator* generator) : p_(p), generator_(generator) {
  KILN_CHECK(p >= 0.0 && p <= 1.0, "Dropout: probability ", p, " must be in [0, 1]");
}

Tensor Dropout::forward(const Tensor& input) {
  return dropout(input, p_, is_training(), generator_ != nullptr ? generator_ : &default_generator());
}

std::string Dropout::describe() const {
  std::ostringstream out;
  out << "Dropout(p=" << p_ << ")";
  return out.str();
}

}  // namespace kiln::layers
