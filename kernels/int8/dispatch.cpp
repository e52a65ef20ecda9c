// The single dispatch point for the int8 convolutions: the AVX-512 kernels where the CPU has AVX-512 VNNI
// and the level (KILN_CPU_LEVEL) allows AVX-512, else the reference kernels, one image per thread.
#include "core/error.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/int8/int8_conv.hpp"

namespace kiln::kernels {
namespace {

bool cpu_has_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  static const bool has = __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

void check_geometry(const Int8ConvGeometry& g, const char* op) {
  KILN_CHECK(g.out_channels % kInt8ChannelBlock == 0 && g.in_channel_stride % kInt8ChannelQuad == 0 &&
                 g.out_height() >= 1 && g.out_width() >= 1 && g.batch >= 1,
             op,
             ": output channels must be a multiple of 16 and the channel stride of 4, the output non-empty");
  const std::int64_t inputs = g.kernel_h * g.kernel_w * g.in_channel_stride;
  KILN_CHECK(inputs <= kInt8MaxInputsPerOutput, op, ": ", inputs,
             " inputs per output could overflow the s32 sums (the most is ", kInt8MaxInputsPerOutput, ")");
}

// Runs kernel(geometry of one image, its input, its epilogue, its output) for every image, images in
// parallel: each image reads x and writes y (and reads the residual) at its own offsets.
template <class Kernel>
void per_image(const Int8ConvGeometry& g, const std::uint8_t* x, const Int8Epilogue& epilogue, void* y,
               const Kernel& kernel) {
  Int8ConvGeometry one = g;
  one.batch = 1;
  const std::int64_t in_image = g.padded_height * g.padded_width * g.in_channel_stride;
  const std::int64_t out_image = g.out_height() * g.out_width() * g.out_channels;
  const std::size_t out_bytes = epilogue.float_output ? sizeof(float) : sizeof(std::uint8_t);
#pragma omp parallel for schedule(static) if (g.batch > 1)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    Int8Epilogue e = epilogue;
    if (e.residual) e.residual += n * out_image;
    kernel(one, x + n * in_image, e,
           static_cast<char*>(y) + static_cast<std::size_t>(n * out_image) * out_bytes);
  }
}

}  // namespace

bool int8_conv2d_uses_vnni() { return cpu_level() == CpuLevel::Avx512 && cpu_has_vnni(); }

void int8_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* packed_w,
                 const Int8Epilogue& epilogue, void* y) {
  check_geometry(g, "int8_conv2d");
  if (int8_conv2d_uses_vnni()) return avx512_vnni::int8_conv2d(g, x, packed_w, epilogue, y);
  per_image(g, x, epilogue, y,
            [&](const Int8ConvGeometry& one, const std::uint8_t* xn, const Int8Epilogue& en, void* yn) {
              reference::int8_conv2d(one, xn, packed_w, en, yn);
            });
}

void int8_depthwise_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* w,
                           const Int8Epilogue& epilogue, void* y) {
  check_geometry(g, "int8_depthwise_conv2d");
  KILN_CHECK(g.in_channel_stride == g.out_channels, "int8_depthwise_conv2d: ", g.in_channel_stride,
             " input channels for ", g.out_channels, " outputs");
  if (int8_conv2d_uses_vnni()) return avx512_vnni::int8_depthwise_conv2d(g, x, w, epilogue, y);
  per_image(g, x, epilogue, y,
            [&](const Int8ConvGeometry& one, const std::uint8_t* xn, const Int8Epilogue& en, void* yn) {
              reference::int8_depthwise_conv2d(one, xn, w, en, yn);
            });
}

}  // namespace kiln::kernels
