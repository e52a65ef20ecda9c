// A train-mode batch norm and its activation applied to a convolution's input as the convolution copies it
// in (InputNormalization, conv2d.hpp), over a vector trait V:
//
//   x' = act(fma(x - shift[c], scale[c], offset[c]))     act: none, the ReLU (capped at relu_upper), or the
//                                                        hard swish
//
// in batch norm's own arithmetic and activation (kernels/batchnorm/batchnorm_vector_ops.hpp's `normalized`
// and `apply_activation`), so x' is the float batch norm's forward would have stored, bit for bit: the
// convolution then gives the bits it gives over the stored tensor, which it never has to read. The copies
// apply it to the input's own values in their buffers, never to the zero padding around them (the padding
// of the normalized tensor, not normalized itself).
//
// Each copy in holds one channel per buffer (depthwise_kernel.hpp's phase-split planes: `for_channel`, the
// coefficients broadcast) or one channel per lane (depthwise_channels_kernel.hpp's pixel vectors:
// `for_channels`, a block of them).
#pragma once

#include <cstdint>

#include "kernels/batchnorm/batchnorm_vector_ops.hpp"
#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels::conv2d_input {

template <typename V>
class Normalizer {
 public:
  using Reg = typename V::Reg;

  // Channel c's coefficients in every lane.
  static Normalizer for_channel(const InputNormalization& input, std::int64_t c) {
    return Normalizer(input, V::broadcast(input.shift[c]), V::broadcast(input.scale[c]),
                      V::broadcast(input.offset[c]));
  }
  // Channels first .. first + lanes - 1 in lanes 0 .. lanes - 1 (the lanes past them zero).
  static Normalizer for_channels(const InputNormalization& input, std::int64_t first, std::int64_t lanes) {
    return Normalizer(input, V::load_partial(input.shift + first, lanes),
                      V::load_partial(input.scale + first, lanes),
                      V::load_partial(input.offset + first, lanes));
  }

  Reg operator()(Reg x) const {
    return vectorized::apply_activation<V>(activation_, upper_,
                                           vectorized::normalized<V>(x, shift_, scale_, offset_));
  }

  // count floats from `at`, in place.
  void run(float* at, std::int64_t count) const {
    std::int64_t i = 0;
    for (; i + V::width <= count; i += V::width) V::store(at + i, (*this)(V::load(at + i)));
    if (i < count) V::store_partial(at + i, (*this)(V::load_partial(at + i, count - i)), count - i);
  }

 private:
  Normalizer(const InputNormalization& input, Reg shift, Reg scale, Reg offset)
      : shift_(shift),
        scale_(scale),
        offset_(offset),
        upper_(V::broadcast(input.relu_upper)),
        activation_{input.relu, input.relu_upper, input.hardswish} {}

  Reg shift_, scale_, offset_, upper_;
  vectorized::OutputActivation activation_;
};

}  // namespace kiln::kernels::conv2d_input
