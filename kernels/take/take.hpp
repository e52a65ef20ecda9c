// take: elements of a table picked by index, y[i] = table[indices[i]] (numpy.take, torch.take on a 1-d
// tensor). Cross-entropy's weighted mean divides by the weights of the samples' labels,
// sum_n class_weight[labels[n]]: a take, then a sum, both on the device that holds the labels, so the host
// never reads the labels back to add them up.
//
//   table [size], indices [n] (int64), y [n];  T is float or double
//   y[i] = table[indices[i]] when 0 <= indices[i] < size, else NaN
//
// The NaN is for a GPU, where the indices are not read on the host (that would make it wait): a bad index
// poisons what it touches instead of reading out of bounds, as cross-entropy's bad labels do
// (kernels/loss/cross_entropy.hpp). core/ checks indices on the CPU and throws, naming the first bad one.
#pragma once

#include <cstdint>

#include "core/device.hpp"

namespace kiln::kernels {

template <typename T>
void take(Device device, std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices,
          T* y);

namespace reference {
template <typename T>
void take(std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices, T* y);
}  // namespace reference

// CUDA (cuda_take.cu): one thread per output element, on the current device, on the compute stream,
// asynchronously; every pointer is a device pointer.
namespace cuda {
template <typename T>
void take(std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices, T* y);
}  // namespace cuda

}  // namespace kiln::kernels
