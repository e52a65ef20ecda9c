// Reference 2-D pooling kernels: plain loops that read like the definitions in pool.hpp.
// They are the oracle every optimized pooling kernel is tested against, so clarity beats speed here.
//
//   x, gx  [N, C, H, W]        y, gy, argmax  [N, C, OH, OW]     (NCHW or channels-last, pool.hpp)
//
// Every (n, c) pair is an independent plane, so each kernel walks the N*C planes and pools one plane at a
// time, reading a plane's element i at plane[i * step] (step 1 in NCHW, C channels-last): the same loops,
// in the same order, make the same bits in either layout. Sums are accumulated in double, so a reference
// average is as exact as it can be in T. Gradients are added up in pool_gradient_sum_t<T> (T for float and
// double, double for bfloat16) and rounded to T once per element.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/pool/pool.hpp"

namespace kiln::kernels::reference {
namespace {

// Does `candidate` replace `best` as a window's maximum? Only a strictly larger value does, so ties stay
// with the first position in row-major order. A NaN beats any number, so a NaN in the input shows up in
// the output instead of being silently dropped. bfloat16 compares as the float it widens to, exactly.
template <typename T>
bool beats(T candidate_value, T best_value) {
  const opmath_t<T> candidate = candidate_value, best = best_value;
  return candidate > best || (std::isnan(candidate) && !std::isnan(best));
}

// One plane of a buffer: element i (a position ih * W + iw, or oh * OW + ow) at data[i * step].
template <typename T>
struct Plane {
  T* data;
  std::int64_t step;
  T& operator[](std::int64_t i) const { return data[i * step]; }
};

template <typename T>
Plane<T> plane_of(T* buffer, const PlaneLayout& layout, std::int64_t plane, std::int64_t positions) {
  return {buffer + layout.start(plane, positions), layout.step()};
}

// Runs scatter(plane, sums) for every plane, where sums is that plane's [H, W] of zeros in
// pool_gradient_sum_t<T> for the scatter to add into, and leaves the sums, rounded to T, in gx. For float
// and double the sums are gx's own plane; bfloat16 adds into one dense double plane, rounded into gx per
// plane.
template <typename T, class Scatter>
void scatter_gradients(const PlaneLayout& layout, std::int64_t planes, std::int64_t in_plane, T* gx,
                       Scatter&& scatter) {
  using Sum = pool_gradient_sum_t<T>;
  if constexpr (std::is_same_v<Sum, T>) {
    std::fill(gx, gx + planes * in_plane, T{0});
    for (std::int64_t plane = 0; plane < planes; ++plane)
      scatter(plane, plane_of(gx, layout, plane, in_plane));
  } else {
    std::vector<Sum> sums(static_cast<std::size_t>(in_plane));
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      std::fill(sums.begin(), sums.end(), Sum{0});
      scatter(plane, Plane<Sum>{sums.data(), 1});
      const Plane<T> gx_plane = plane_of(gx, layout, plane, in_plane);
      for (std::int64_t i = 0; i < in_plane; ++i)
        gx_plane[i] = static_cast<T>(sums[static_cast<std::size_t>(i)]);
    }
  }
}

}  // namespace

// ---- max pooling -------------------------------------------------------------------------------------

// y[n,c,oh,ow] = max over the window of x[n,c,ih,iw];  argmax[n,c,oh,ow] = ih * W + iw of the winner.
// Padding is never looked at, which is the same as treating it as -infinity. Validated geometry
// (pad <= kernel / 2, the ceil-mode trim in Pool2dGeometry) gives every window at least one input position.
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t planes = g.batch * g.channels;
  const std::int64_t in_plane = g.in_height * g.in_width;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const Plane<const T> x_plane = plane_of(x, g.layout(), plane, in_plane);                      // [H, W]
    const Plane<T> y_plane = plane_of(y, g.layout(), plane, out_h * out_w);                       // [OH, OW]
    const Plane<std::int32_t> argmax_plane = plane_of(argmax, g.layout(), plane, out_h * out_w);  // [OH, OW]
    for (std::int64_t oh = 0; oh < out_h; ++oh) {
      const WindowSpan rows = g.row_span(oh);
      for (std::int64_t ow = 0; ow < out_w; ++ow) {
        const WindowSpan cols = g.col_span(ow);
        std::int64_t best_index = -1;
        T best_value{};
        for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
          for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
            const std::int64_t index = ih * g.in_width + iw;
            if (best_index < 0 || beats(x_plane[index], best_value)) {
              best_index = index;
              best_value = x_plane[index];
            }
          }
        }
        y_plane[oh * out_w + ow] = best_value;
        argmax_plane[oh * out_w + ow] = static_cast<std::int32_t>(best_index);
      }
    }
  }
}

// gx[n,c,argmax[n,c,oh,ow]] += gy[n,c,oh,ow]: only the winner of a window moved its output, so it alone
// receives that output's gradient. Overlapping windows may pick the same winner, hence the sum.
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx) {
  const std::int64_t planes = g.batch * g.channels;
  const std::int64_t in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height() * g.out_width();
  using Sum = pool_gradient_sum_t<T>;
  scatter_gradients(g.layout(), planes, in_plane, gx,
                    [&](std::int64_t plane, Plane<Sum> gx_plane /* [H, W] */) {
                      const Plane<const T> gy_plane = plane_of(gy, g.layout(), plane, out_plane);  // [OH, OW]
                      const Plane<const std::int32_t> argmax_plane =
                          plane_of(argmax, g.layout(), plane, out_plane);  // [OH, OW]
                      for (std::int64_t out = 0; out < out_plane; ++out)
                        gx_plane[argmax_plane[out]] += Sum(gy_plane[out]);
                    });
}

// ---- average pooling ---------------------------------------------------------------------------------

// y[n,c,oh,ow] = (sum over the window's input positions of x[n,c,ih,iw]) / divisor, where padding adds
// zeros to the sum and the divisor follows count_include_pad (Pool2dGeometry::avg_divisor).
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  const std::int64_t planes = g.batch * g.channels;
  const std::int64_t in_plane = g.in_height * g.in_width;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const Plane<const T> x_plane = plane_of(x, g.layout(), plane, in_plane);  // [H, W]
    const Plane<T> y_plane = plane_of(y, g.layout(), plane, out_h * out_w);   // [OH, OW]
    for (std::int64_t oh = 0; oh < out_h; ++oh) {
      const WindowSpan rows = g.row_span(oh);
      for (std::int64_t ow = 0; ow < out_w; ++ow) {
        const WindowSpan cols = g.col_span(ow);
        double sum = 0;
        for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
          for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) sum += x_plane[ih * g.in_width + iw];
        }
        y_plane[oh * out_w + ow] = static_cast<T>(sum / static_cast<double>(g.avg_divisor(rows, cols)));
      }
    }
  }
}

// Each output is a sum of its inputs divided by a constant, so every input position of the window gets
// gy[n,c,oh,ow] / divisor; overlapping windows add up. The share is rounded to the sum's type (T for
// float and double; unrounded double for bfloat16).
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  const std::int64_t planes = g.batch * g.channels;
  const std::int64_t in_plane = g.in_height * g.in_width;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  using Sum = pool_gradient_sum_t<T>;
  scatter_gradients(
      g.layout(), planes, in_plane, gx, [&](std::int64_t plane, Plane<Sum> gx_plane /* [H, W] */) {
        const Plane<const T> gy_plane = plane_of(gy, g.layout(), plane, out_h * out_w);  // [OH, OW]
        for (std::int64_t oh = 0; oh < out_h; ++oh) {
          const WindowSpan rows = g.row_span(oh);
          for (std::int64_t ow = 0; ow < out_w; ++ow) {
            const WindowSpan cols = g.col_span(ow);
            const Sum share = static_cast<Sum>(static_cast<double>(gy_plane[oh * out_w + ow]) /
                                               static_cast<double>(g.avg_divisor(rows, cols)));
            for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
              for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) gx_plane[ih * g.in_width + iw] += share;
            }
          }
        }
      });
}

// ---- global average pooling --------------------------------------------------------------------------

// x [N, C, H, W] -> y [N, C]: the mean of each plane, summed in double in position order.
template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y) {
  for (std::int64_t plane = 0; plane < g.planes(); ++plane) {
    const Plane<const T> x_plane = plane_of(x, g.layout(), plane, g.plane_size);
    double sum = 0;
    for (std::int64_t i = 0; i < g.plane_size; ++i) sum += x_plane[i];
    y[plane] = static_cast<T>(sum / static_cast<double>(g.plane_size));
  }
}

// gy [N, C] -> gx [N, C, H, W]: every element contributed 1 / plane_size of its plane's mean. Accumulating,
// that share is added to gx's value in double and rounded once, as the elementwise reference adds.
template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate) {
  for (std::int64_t plane = 0; plane < g.planes(); ++plane) {
    const T share = static_cast<T>(static_cast<double>(gy[plane]) / static_cast<double>(g.plane_size));
    const Plane<T> gx_plane = plane_of(gx, g.layout(), plane, g.plane_size);
    for (std::int64_t i = 0; i < g.plane_size; ++i) {
      gx_plane[i] =
          accumulate ? static_cast<T>(static_cast<double>(gx_plane[i]) + static_cast<double>(share)) : share;
    }
  }
}

// ---- explicit instantiations -------------------------------------------------------------------------

template void max_pool2d_forward<float>(const Pool2dGeometry&, const float*, float*, std::int32_t*);
template void max_pool2d_backward<float>(const Pool2dGeometry&, const float*, const std::int32_t*, float*);
template void avg_pool2d_forward<float>(const Pool2dGeometry&, const float*, float*);
template void avg_pool2d_backward<float>(const Pool2dGeometry&, const float*, float*);
template void global_avg_pool2d_forward<float>(const GlobalPool2dGeometry&, const float*, float*);
template void global_avg_pool2d_backward<float>(const GlobalPool2dGeometry&, const float*, float*, bool);

template void max_pool2d_forward<double>(const Pool2dGeometry&, const double*, double*, std::int32_t*);
template void max_pool2d_backward<double>(const Pool2dGeometry&, const double*, const std::int32_t*, double*);
template void avg_pool2d_forward<double>(const Pool2dGeometry&, const double*, double*);
template void avg_pool2d_backward<double>(const Pool2dGeometry&, const double*, double*);
template void global_avg_pool2d_forward<double>(const GlobalPool2dGeometry&, const double*, double*);
template void global_avg_pool2d_backward<double>(const GlobalPool2dGeometry&, const double*, double*, bool);

template void max_pool2d_forward<bfloat16>(const Pool2dGeometry&, const bfloat16*, bfloat16*, std::int32_t*);
template void max_pool2d_backward<bfloat16>(const Pool2dGeometry&, const bfloat16*, const std::int32_t*,
                                            bfloat16*);
template void avg_pool2d_forward<bfloat16>(const Pool2dGeometry&, const bfloat16*, bfloat16*);
template void avg_pool2d_backward<bfloat16>(const Pool2dGeometry&, const bfloat16*, bfloat16*);
template void global_avg_pool2d_forward<bfloat16>(const GlobalPool2dGeometry&, const bfloat16*, bfloat16*);
template void global_avg_pool2d_backward<bfloat16>(const GlobalPool2dGeometry&, const bfloat16*, bfloat16*,
                                                   bool);

}  // namespace kiln::kernels::reference
