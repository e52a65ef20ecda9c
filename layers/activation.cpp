#include "layers/activation.hpp"

#include <cmath>
#include <sstream>

namespace kiln::layers {

LeakyReLU::LeakyReLU(double negative_slope) : negative_slope_(negative_slope) {
  KILN_CHECK(std::isfinite(negative_slope), "LeakyReLU: negative_slope ", negative_slope, " must be finite");
}

std::string LeakyReLU::describe() const {
  std::ostringstream out;
  out << "LeakyReLU(negative_slope=" << negative_slope_ << ")";
  return out.str();
}

}  // namespace kiln::layers
