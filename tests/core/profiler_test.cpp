// The op profiler (core/profiler.hpp): a Session sees its own thread's outermost scopes and nothing else,
// rows sum the calls of one op, detail, device and element type, and a real op's dispatch is one of them.
#include "core/profiler.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"

namespace core_profiler_test {

using namespace kiln;

namespace {

const profiler::OpTime* find_row(const profiler::Profile& profile, const std::string& op,
                                 const std::string& detail = "") {
  for (const profiler::OpTime& row : profile.ops) {
    if (row.op == op && row.detail == detail) return &row;
  }
  return nullptr;
}

void sleep_ms(int milliseconds) { std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds)); }

}  // namespace

TEST_CASE("profiler: a scope with no session on its thread records nothing and costs no session") {
  profiler::Scope scope("outside", Device::cpu(), DType::Float32);
  CHECK_FALSE(scope.measuring());
  profiler::Session session(Device::cpu());
  const profiler::Profile profile = session.finish();
  CHECK(profile.ops.empty());
}

TEST_CASE("profiler: rows sum the outermost scopes by op, detail, device and dtype, the most time first") {
  profiler::Session session(Device::cpu());
  for (int i = 0; i < 3; ++i) {
    profiler::Scope outer("slow", Device::cpu(), DType::Float32);
    CHECK(outer.measuring());
    outer.set_detail("a");
    {
      profiler::Scope inner("nested", Device::cpu(), DType::Float32);  // part of "slow": not a row
      CHECK_FALSE(inner.measuring());
      sleep_ms(4);
    }
  }
  {
    profiler::Scope other_detail("slow", Device::cpu(), DType::Float32);
    other_detail.set_detail("b");
    sleep_ms(1);
  }
  {
    profiler::Scope other_dtype("slow", Device::cpu(), DType::Float64);
    other_dtype.set_detail("a");
  }
  { profiler::Scope no_dtype("quick", Device::cpu(), std::nullopt); }
  const profiler::Profile profile = session.finish();

  REQUIRE(profile.ops.size() == 4);
  CHECK(find_row(profile, "nested") == nullptr);
  const profiler::OpTime* slow_a = find_row(profile, "slow", "a");
  REQUIRE(slow_a != nullptr);
  CHECK(profile.ops.front().op == "slow");  // the 12 ms row leads
  CHECK(profile.ops.front().detail == "a");
  CHECK(profile.ops.front().dtype == DType::Float32);
  CHECK(profile.ops.front().calls == 3);
  CHECK(profile.ops.front().milliseconds >= 12.0);
  for (std::size_t i = 1; i < profile.ops.size(); ++i)
    CHECK(profile.ops[i - 1].milliseconds >= profile.ops[i].milliseconds);
  const profiler::OpTime* quick = find_row(profile, "quick");
  REQUIRE(quick != nullptr);
  CHECK_FALSE(quick->dtype.has_value());
  CHECK(quick->calls == 1);
  // The rows are disjoint stretches of the session: they fit in its wall time.
  CHECK(profile.op_milliseconds() <= profile.wall_milliseconds);
  CHECK(profile.wall_milliseconds >= 13.0);
}

TEST_CASE("profiler: a session sees only its own thread") {
  profiler::Session session(Device::cpu());
  std::thread other([] {
    profiler::Scope scope("elsewhere", Device::cpu(), DType::Float32);
    CHECK_FALSE(scope.measuring());
  });
  other.join();
  { profiler::Scope here("here", Device::cpu(), DType::Float32); }
  const profiler::Profile profile = session.finish();
  REQUIRE(profile.ops.size() == 1);
  CHECK(profile.ops.front().op == "here");
}

TEST_CASE("profiler: one session per thread, finished once") {
  profiler::Session session(Device::cpu());
  CHECK_THROWS_WITH_AS(profiler::Session(Device::cpu()), doctest::Contains("already recording"), Error);
  session.finish();
  CHECK_THROWS_WITH_AS(session.finish(), doctest::Contains("finished"), Error);
  profiler::Session next(Device::cpu());  // the thread is free again
  CHECK(next.finish().ops.empty());
}

TEST_CASE("profiler: an op's dispatch is a row: its kernel's name, dtype, device and detail") {
  const Tensor x = Tensor::from_vector<float>({-1.0f, 2.0f, -3.0f, 4.0f}, {4});
  profiler::Session session(Device::cpu());
  const Tensor y = relu(x);
  const Tensor z = add(y, x);
  const profiler::Profile profile = session.finish();
  CHECK(y.to_vector<float>() == std::vector<float>{0.0f, 2.0f, 0.0f, 4.0f});
  const profiler::OpTime* relu_row = find_row(profile, "unary_forward", "relu");
  REQUIRE(relu_row != nullptr);
  CHECK(relu_row->calls == 1);
  CHECK(relu_row->dtype == DType::Float32);
  CHECK(relu_row->device == Device::cpu());
  const profiler::OpTime* add_row = find_row(profile, "binary_forward", "add");
  REQUIRE(add_row != nullptr);
  CHECK(add_row->calls == 1);
  CHECK(z.to_vector<float>() == std::vector<float>{-1.0f, 4.0f, -3.0f, 8.0f});
}

// The rows of the ops that count their arithmetic: 2 FLOPs a multiply-add, from the shapes they computed.
TEST_CASE("profiler: convolutions and matrix products count their FLOPs in every direction; others none") {
  Generator generator(3);
  // 2 images [6, 9, 7], 4 outputs in 2 groups (3 inputs each), 3x3 taps at stride 2, padding 1, dilation 2:
  // an output of (9 + 2 - 4 - 1) / 2 + 1 = 4 by (7 + 2 - 4 - 1) / 2 + 1 = 3.
  Tensor x = Tensor::randn({2, 6, 9, 7}, DType::Float32, &generator);
  Tensor w = Tensor::randn({4, 3, 3, 3}, DType::Float32, &generator);
  x.set_requires_grad();
  w.set_requires_grad();
  const std::int64_t convolution = 2 * (2 * 4 * 4 * 3) * (3 * 3 * 3);
  const Tensor a = Tensor::randn({5, 7}, DType::Float32, &generator);
  const Tensor b = Tensor::randn({7, 3}, DType::Float32, &generator);
  profiler::Session session(Device::cpu());
  const Tensor y =
      conv2d(x, w, Tensor(), {.stride = {2, 2}, .padding = {1, 1}, .dilation = {2, 2}, .groups = 2});
  sum(relu(y)).backward();
  const Tensor product = matmul(a, b);
  const profiler::Profile profile = session.finish();
  CHECK(y.shape() == Shape{2, 4, 4, 3});
  std::int64_t counted = 0;
  for (const profiler::OpTime& row : profile.ops) {
    INFO(row.op, " ", row.detail);
    if (row.op == "conv2d_forward" || row.op == "conv2d_backward_data" ||
        row.op == "conv2d_backward_weight") {
      CHECK(row.flops == convolution);
    } else if (row.op == "gemm") {
      CHECK(row.detail == "5x3x7 nn");
      CHECK(row.flops == 2 * 5 * 3 * 7);
    } else {
      CHECK(row.flops == 0);
    }
    counted += row.flops;
  }
  CHECK(profile.flops() == counted);
  CHECK(profile.flops() == 3 * convolution + 2 * 5 * 3 * 7);
}

}  // namespace core_profiler_test
