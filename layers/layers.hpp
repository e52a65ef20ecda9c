// The layer catalogue. Each layer's forward is a composition of differentiable ops from core/ops.hpp,
// so its backward comes from the tape. Initialization is seeded: every constructor that creates weights
// takes the Generator to draw them from.
#pragma once

#include "layers/activation.hpp"
#include "layers/batchnorm.hpp"
#include "layers/blocks.hpp"
#include "layers/conv2d.hpp"
#include "layers/conv_batch_norm.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "layers/init.hpp"
#include "layers/linear.hpp"
#include "layers/pool.hpp"
#include "layers/sequential.hpp"
