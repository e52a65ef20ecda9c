// The tape and the engine: accumulation across uses, leaf gradients, no_grad, detach, and the errors of
// a backward that cannot run.
#include "core/autograd.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include "core/ops.hpp"
#include "core/raw.hpp"

namespace core_autograd_test {

using namespace kiln;

namespace {
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }
Tensor leaf(std::vector<double> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  Tensor t = Tensor::from_vector(v, {n});
  t.set_requires_grad();
  return t;
}
}  // namespace

TEST_CASE("autograd: a tensor used twice receives the sum of both gradients") {
  const Tensor x = leaf({1.0, 2.0, 3.0});
  sum(x * x + x).backward();  // d/dx (x^2 + x) = 2x + 1
  CHECK(values(x.grad()) == std::vector<double>{3, 5, 7});
}

TEST_CASE("autograd: gradients accumulate across backward calls until zeroed") {
  Tensor x = leaf({1.0, -1.0});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  CHECK(values(x.grad()) == std::vector<double>{6, 6});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: a diamond graph calls each rule once, after all its inputs arrived") {
  const Tensor x = leaf({2.0});
  const Tensor a = x * 3.0, b = exp(a), c = a * b;  // c = 3x e^{3x};  dc/dx = 3 e^{3x} (1 + 3x)
  c.backward();
  CHECK(x.grad().item() == doctest::Approx(3.0 * std::exp(6.0) * 7.0));
}

// The engine adds a node's later gradients into its first one in place where it holds that one alone
// (core/autograd.cpp). Here mul's rule makes one dense gradient G (1.5 everywhere) and add's rule hands that
// same G to both w1 and w2, each of which then receives two more gradients: adding them into G in place would
// change the other's gradient too. So G must be summed into a fresh tensor (which may then take the third
// gradient in place). dx = (1.5 + 2 + 5) * 3 + (1.5 + 7 + 11) * 4.
TEST_CASE("autograd: accumulating in place never changes a gradient another input shares") {
  const Tensor x = leaf({1.0, -2.0});
  const Tensor w1 = x * 3.0, w2 = x * 4.0;
  // The last term's gradients reach w1 and w2 first (the engine runs the nodes in reverse post-order).
  const Tensor loss = sum(w1 * 2.0) + sum(w1 * 5.0) + sum(w2 * 7.0) + sum(w2 * 11.0) + sum((w1 + w2) * 1.5);
  loss.backward();
  CHECK(values(x.grad()) == std::vector<double>{103.5, 103.5});
}

TEST_CASE("autograd: no_grad records nothing and detach cuts the tape") {
  const Tensor x = leaf({1.0, 2.0});
  {
    NoGradGuard no_grad;
    const Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(grad_enabled() == false);
  }
  CHECK(grad_enabled());
  const Tensor d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(values(d) == std::vector<double>{2, 4});
  // The detached branch contributes no gradient.
  sum(x * d).backward();
  CHECK(values(x.grad()) == std::vector<double>{2, 4});
}

TEST_CASE("autograd: inputs that do not require grad get none, and rules skip their work") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor constant = Tensor::from_vector<double>({5.0, 7.0}, {2});
  sum(x * constant).backward();
  CHECK(values(x.grad()) == std::vector<double>{5, 7});
  CHECK_FALSE(constant.grad().defined());
}

TEST_CASE("autograd: a leaf's grad is its own dense tensor, not an alias of the seed") {
  const Tensor x = leaf({1.0, 2.0});
  Tensor seed = Tensor::from_vector<double>({1.0, 1.0}, {2});
  x.clone().backward(seed);
  seed.fill_(100.0);
  CHECK(values(x.grad()) == std::vector<double>{1, 1});
  // Broadcast gradients are materialized too.
  Tensor s = leaf({3.0});
  sum(s.expand({4})).backward();
  CHECK(s.grad().is_contiguous());
  CHECK(values(s.grad()) == std::vector<double>{4});
}

// A rule's fresh dense gradient becomes .grad as it is; one the rule still holds (or a view, or one handed
// to two inputs) is copied, so .grad never changes behind the user's back.
TEST_CASE("autograd: a leaf takes a rule's fresh gradient without a copy, and copies one held elsewhere") {
  const Tensor x = leaf({1.0, 2.0});
  const double* handed = nullptr;
  Tensor y = record_node("probe", {x}, x.detach().clone(), [&handed](const Tensor& g, const NeedsGrad&) {
    Tensor fresh = g * 2.0;
    handed = fresh.data<double>();
    return Grads{fresh};
  });
  sum(y).backward();
  CHECK(x.grad().data<double>() == handed);
  CHECK(values(x.grad()) == std::vector<double>{2, 2});

  const Tensor z = leaf({1.0, 2.0});
  Tensor stash;
  y = record_node("stashing probe", {z}, z.detach().clone(), [&stash](const Tensor& g, const NeedsGrad&) {
    stash = g * 2.0;
    return Grads{stash};
  });
  sum(y).backward();
  CHECK(z.grad().data<double>() != stash.data<double>());
  stash.fill_(-1.0);
  CHECK(values(z.grad()) == std::vector<double>{2, 2});

  // One gradient for two leaves: each gets its own.
  const Tensor a = leaf({1.0}), b = leaf({2.0});
  y = record_node("shared probe", {a, b}, a.detach().clone(), [](const Tensor& g, const NeedsGrad&) {
    const Tensor fresh = g * 3.0;
    return Grads{fresh, fresh};
  });
  sum(y).backward();
  CHECK(a.grad().data<double>() != b.grad().data<double>());
  a.grad().fill_(0.0);
  CHECK(b.grad().item() == 3.0);
}

// NeedsGrad::sum_into: the second rule to produce a gradient for an input used twice may add it into the
// first's, which then reaches the input unchanged by any further add; it is never offered where another
// input of the same op shares the producer, or where something besides the engine holds the sum.
TEST_CASE("autograd: a rule may add its gradient into the sum so far of an input used twice") {
  Tensor x = leaf({1.0, 2.0});
  const Tensor t = x * 1.0;  // a node's output, whose gradients the engine sums
  std::vector<bool> offered;
  const auto doubling = [&offered](const Tensor& g, const NeedsGrad& needs) {
    const Tensor* sum = needs.sum_into(0);
    offered.push_back(sum != nullptr);
    if (!sum) return Grads{g * 2.0};
    raw::add_in_place(*sum, g * 2.0);
    return Grads{*sum};
  };
  const Tensor a = record_node("first", {t}, t.detach().clone(), doubling);
  const Tensor b = record_node("second", {t}, t.detach().clone(), doubling);
  sum(a + b * 3.0).backward();  // d/dx = 2 + 6
  CHECK(offered == std::vector<bool>{false, true});
  CHECK(values(x.grad()) == std::vector<double>{8, 8});

  // Two inputs of one op from the same producer: no offer to either, though a sum is pending ("first" runs
  // before "pair": the engine walks the later operand of the + first).
  const Tensor u = x * 1.0;
  const Tensor c = record_node("first", {u}, u.detach().clone(), doubling);
  bool pair_offered = true;
  const Tensor pair = record_node(
      "pair", {u, u}, u.detach().clone(), [&pair_offered](const Tensor& g, const NeedsGrad& needs) {
        pair_offered = needs.sum_into(0) != nullptr || needs.sum_into(1) != nullptr;
        return Grads{g, g};
      });
  offered.clear();
  x.zero_grad();
  sum(pair + c).backward();
  CHECK(offered == std::vector<bool>{false});
  CHECK_FALSE(pair_offered);
  CHECK(values(x.grad()) == std::vector<double>{4, 4});

  // A sum a rule still holds (it kept its gradient): not offered, so the held tensor never changes.
  offered.clear();
  Tensor kept;
  const Tensor v = x * 1.0;
  const Tensor d =
      record_node("keeping", {v}, v.detach().clone(), [&kept](const Tensor& g, const NeedsGrad&) {
        kept = g * 1.0;
        return Grads{kept};
      });
  const Tensor e = record_node("second", {v}, v.detach().clone(), doubling);
  x.zero_grad();
  sum(e + d).backward();  // "keeping" first
  CHECK(offered == std::vector<bool>{false});
  CHECK(values(kept) == std::vector<double>{1, 1});
  CHECK(values(x.grad()) == std::vector<double>{3, 3});
}

TEST_CASE("autograd: errors") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("not a scalar"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({1}).backward(), doctest::Contains("does not require grad"), Error);
  CHECK_THROWS_WITH_AS(y.backward(Tensor::ones({3}, DType::Float64)), doctest::Contains("does not match"),
                       Error);
  Tensor non_leaf = y;
  CHECK_THROWS_WITH_AS(non_leaf.set_requires_grad(), doctest::Contains("only leaves"), Error);
  Tensor integers = Tensor::zeros({2}, DType::Int64);
  CHECK_THROWS_WITH_AS(integers.set_requires_grad(), doctest::Contains("not floating-point"), Error);
}

TEST_CASE("autograd: a deep chain does not overflow the stack") {
  const Tensor x = leaf({1.0});
  Tensor y = x;
  for (int i = 0; i < 5000; ++i) y = y * 1.0;
  y.backward();
  CHECK(x.grad().item() == 1.0);
}

}  // namespace core_autograd_test
