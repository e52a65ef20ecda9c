// The op profiler (core/profiler.hpp): a Session sees its own thread's outermost scopes and nothing else,
// rows sum the calls of one op, detail, device and element type, and a real op's dispatch is one of them.
#include "core/profiler.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "core/error.hpp"
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

}  // namespace core_profiler_test
