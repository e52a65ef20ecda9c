// Dropout: in train mode zeroes each element with probability p and scales the survivors by 1 / (1 - p)
// (inverted dropout, so eval mode is the identity and needs no rescaling). Any shape in, the same out.
#pragma once

#include <string>

#include "core/generator.hpp"
#include "layers/module.hpp"

namespace kiln::layers {

class Dropout : public Module {
 public:
  // p in [0, 1]. The masks are drawn from `generator`, which must outlive the layer; nullptr means
  // default_generator(), looked up at each forward (so manual_seed() after construction takes effect).
  explicit Dropout(double p, Generator* generator = nullptr);

  Tensor forward(const Tensor& input) override;  // kiln::dropout with training = is_training()
  std::string describe() const override;         // "Dropout(p=0.5)"
  double p() const { return p_; }

 private:
  double p_;
  Generator* generator_;
};

}  // namespace kiln::layers
