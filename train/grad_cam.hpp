// Grad-CAM (Selvaraju et al., 2017): which parts of an image made the network pick a class.
//
//   A        the activations [C, h, w] of the last layer that still has a spatial layout (for the
//            ResNets, the last stage's output; for the VGG nets, the last pooled feature map)
//   score_k  the logit of class k, computed from A by the rest of the network
//   alpha_c  = mean over (h, w) of d score_k / d A[c]     how much channel c counts for class k
//   cam_k    = relu(sum over c of alpha_c * A[c])  [h, w], scaled so its largest value is 1
//
// The network is split at A: the layers before it run once without the tape, the layers after it run
// from a leaf copy of A for each explained class, and backward gives d score_k / d A. The model must be a
// Sequential at the top (every model of the zoo is); its layers then run one by one, which computes the
// same values as the fused forward.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.hpp"
#include "train/model_io.hpp"

namespace kiln::train {

struct ClassActivationMap {
  std::string name;        // class name
  std::int64_t index = 0;  // class index
  double probability = 0;  // softmax probability of the class (a multi-label model's: its sigmoid)
  std::int64_t height = 0, width = 0;
  std::vector<float> values;  // [height, width], in [0, 1]
};

struct Explanation {
  std::string feature_layer;             // the layer whose output is A, e.g. "stage3"
  data::Image seen;                      // the image as the model saw it (resized, cropped, channels
                                         // matched; the normalization undone for display)
  std::vector<ClassActivationMap> maps;  // the top_k classes, most probable first
};

// Grad-CAM for the `top_k` most probable classes of one image, preprocessed by the checkpoint's own
// Preprocessing. Throws kiln::Error when the model is not a Sequential or has no spatial layer.
Explanation grad_cam(const LoadedModel& loaded, const data::Image& image, std::int64_t top_k);

}  // namespace kiln::train
