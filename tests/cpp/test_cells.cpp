// The per-element cell math of csrc/cells/, on its own: every forward against
// the formulas in its header's comment, every backward field against central
// finite differences of the forward. A wrong gradient there is wrong in every
// backend, and the op-level tests only see it mixed with the GEMMs.
//
// Each backward is checked on a scalar loss L = sum_k w_k * output_k with
// random w_k, so the gradients arriving at the outputs (dh, dc) are the w_k.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "cells/gru.h"
#include "cells/lstm.h"
#include "cells/rnn.h"

namespace fc = fastrnn::cells;

namespace {

int checks = 0, failures = 0;

// Relative where the value is large, absolute near zero.
void expect_near(const std::string& what, double got, double want, double tol) {
  ++checks;
  if (std::abs(got - want) <= tol * std::max(1.0, std::abs(want))) return;
  ++failures;
  std::printf("FAIL %-28s got % .12e  want % .12e  diff %.2e\n", what.c_str(), got, want,
              std::abs(got - want));
}

constexpr double kStep = 1e-6;    // central difference: error ~ step^2 + eps / step
constexpr double kGradTol = 1e-7;
constexpr double kFwdTol = 1e-14;
constexpr int kPoints = 20;

std::mt19937_64 rng(20240611);
double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }

template <size_t N>
std::array<double, N> random_point() {
  std::array<double, N> x;
  for (auto& v : x) v = uniform(-2.0, 2.0);
  return x;
}

// d loss / d x[k] by central differences.
template <size_t N, typename Loss>
double numeric_grad(const Loss& loss, std::array<double, N> x, size_t k) {
  const double x0 = x[k];
  x[k] = x0 + kStep;
  const double up = loss(x);
  x[k] = x0 - kStep;
  const double down = loss(x);
  return (up - down) / (2 * kStep);
}

double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---------------------------------------------------------------- RNN

void test_rnn() {
  expect_near("rnn tanh(0)", fc::rnn_forward<double>(0.0, false), 0.0, kFwdTol);
  expect_near("rnn tanh(1)", fc::rnn_forward<double>(1.0, false), 0.7615941559557649, kFwdTol);
  expect_near("rnn relu(-1)", fc::rnn_forward<double>(-1.0, true), 0.0, kFwdTol);
  expect_near("rnn relu(2)", fc::rnn_forward<double>(2.0, true), 2.0, kFwdTol);
  // torch's threshold_backward: no gradient through relu at exactly 0.
  expect_near("rnn relu grad at 0", fc::rnn_backward<double>(1.0, 0.0, true), 0.0, 0.0);

  for (bool relu : {false, true}) {
    const std::string name = relu ? "rnn relu" : "rnn tanh";
    for (int p = 0; p < kPoints; ++p) {
      std::array<double, 1> pre = random_point<1>();
      // Keep relu's kink out of the finite difference's reach.
      while (relu && std::abs(pre[0]) < 1e-3) pre = random_point<1>();
      const double w = uniform(-1.0, 1.0);
      const double h = fc::rnn_forward<double>(pre[0], relu);
      expect_near(name + " forward", h, relu ? std::max(pre[0], 0.0) : std::tanh(pre[0]), kFwdTol);
      auto loss = [&](const std::array<double, 1>& x) {
        return w * fc::rnn_forward<double>(x[0], relu);
      };
      expect_near(name + " d/dpre", fc::rnn_backward<double>(w, h, relu),
                  numeric_grad(loss, pre, 0), kGradTol);
    }
  }
}

// ---------------------------------------------------------------- LSTM

// Inputs: pre_i, pre_f, pre_g, pre_o, c_prev.
fc::LSTMActivations<double> lstm(const std::array<double, 5>& x) {
  return fc::lstm_forward<double>(x[0], x[1], x[2], x[3], x[4]);
}

void test_lstm() {
  // sigmoid(+-log 3) = 3/4, 1/4; tanh(atanh 0.5) = 0.5; sigmoid(0) = 0.5.
  {
    const auto a = lstm({std::log(3.0), -std::log(3.0), std::atanh(0.5), 0.0, 2.0});
    expect_near("lstm hand i", a.i, 0.75, kFwdTol);
    expect_near("lstm hand f", a.f, 0.25, kFwdTol);
    expect_near("lstm hand g", a.g, 0.5, kFwdTol);
    expect_near("lstm hand o", a.o, 0.5, kFwdTol);
    expect_near("lstm hand c", a.c, 0.25 * 2.0 + 0.75 * 0.5, kFwdTol);
    expect_near("lstm hand h", a.h, 0.5 * std::tanh(0.875), kFwdTol);
  }

  const char* names[5] = {"pre_i", "pre_f", "pre_g", "pre_o", "c_prev"};
  for (int p = 0; p < kPoints; ++p) {
    const auto x = random_point<5>();
    const double wh = uniform(-1.0, 1.0), wc = uniform(-1.0, 1.0);
    const auto a = lstm(x);

    const double i = sig(x[0]), f = sig(x[1]), g = std::tanh(x[2]), o = sig(x[3]);
    const double c = f * x[4] + i * g;
    expect_near("lstm forward c", a.c, c, kFwdTol);
    expect_near("lstm forward h", a.h, o * std::tanh(c), kFwdTol);

    auto loss = [&](const std::array<double, 5>& v) {
      const auto b = lstm(v);
      return wh * b.h + wc * b.c;
    };
    const auto d = fc::lstm_backward<double>(wh, wc, a.i, a.f, a.g, a.o, a.c, x[4]);
    const double got[5] = {d.pre_i, d.pre_f, d.pre_g, d.pre_o, d.c_prev};
    for (size_t k = 0; k < 5; ++k)
      expect_near(std::string("lstm grad ") + names[k], got[k], numeric_grad(loss, x, k), kGradTol);
  }
}

// ---------------------------------------------------------------- GRU

// Inputs: x_r, x_z, x_n, h_r, h_z, h_n, h_prev.
fc::GRUActivations<double> gru(const std::array<double, 7>& x) {
  return fc::gru_forward<double>(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
}

void test_gru() {
  {
    const auto a = gru({std::log(3.0), 0.0, 0.2, 0.0, 0.0, 0.4, 1.0});
    expect_near("gru hand r", a.r, 0.75, kFwdTol);
    expect_near("gru hand z", a.z, 0.5, kFwdTol);
    expect_near("gru hand n", a.n, std::tanh(0.2 + 0.75 * 0.4), kFwdTol);
    expect_near("gru hand h", a.h, 0.5 * std::tanh(0.5) + 0.5 * 1.0, kFwdTol);
  }

  for (int p = 0; p < kPoints; ++p) {
    const auto x = random_point<7>();
    const double w = uniform(-1.0, 1.0);
    const auto a = gru(x);

    const double r = sig(x[0] + x[3]), z = sig(x[1] + x[4]);
    const double n = std::tanh(x[2] + r * x[5]);
    expect_near("gru forward h", a.h, (1 - z) * n + z * x[6], kFwdTol);

    auto loss = [&](const std::array<double, 7>& v) { return w * gru(v).h; };
    const auto d = fc::gru_backward<double>(w, a.r, a.z, a.n, x[5], x[6]);
    // pre_r is the gradient of x_r + h_r, so it must match both summands'.
    expect_near("gru grad pre_r (via x_r)", d.pre_r, numeric_grad(loss, x, 0), kGradTol);
    expect_near("gru grad pre_r (via h_r)", d.pre_r, numeric_grad(loss, x, 3), kGradTol);
    expect_near("gru grad pre_z (via x_z)", d.pre_z, numeric_grad(loss, x, 1), kGradTol);
    expect_near("gru grad pre_z (via h_z)", d.pre_z, numeric_grad(loss, x, 4), kGradTol);
    expect_near("gru grad x_n", d.x_n, numeric_grad(loss, x, 2), kGradTol);
    expect_near("gru grad h_n", d.h_n, numeric_grad(loss, x, 5), kGradTol);
    // h_r, h_z, h_n held fixed: only the direct z * h_prev path.
    expect_near("gru grad h_prev (direct)", d.h_prev, numeric_grad(loss, x, 6), kGradTol);
  }
}

// ---------------------------------------------------------------- float

// The kernels run the cells with acc_t = float too: it must compile and agree
// with double to float precision.
void test_float() {
  const float tol = 1e-5f;
  const auto x = random_point<7>();
  const float wf = 0.7f;
  const auto f = [&](int k) { return static_cast<float>(x[k]); };

  expect_near("float rnn", fc::rnn_forward<float>(f(0), false), std::tanh(f(0)), tol);
  expect_near("float rnn grad", fc::rnn_backward<float>(wf, 0.5f, true), wf, tol);

  const auto la = fc::lstm_forward<float>(f(0), f(1), f(2), f(3), f(4));
  const auto lb = lstm({f(0), f(1), f(2), f(3), f(4)});
  expect_near("float lstm h", la.h, lb.h, tol);
  const auto ld = fc::lstm_backward<float>(wf, wf, la.i, la.f, la.g, la.o, la.c, f(4));
  const auto ldd = fc::lstm_backward<double>(wf, wf, lb.i, lb.f, lb.g, lb.o, lb.c, f(4));
  expect_near("float lstm grad pre_f", ld.pre_f, ldd.pre_f, tol);

  const auto ga = fc::gru_forward<float>(f(0), f(1), f(2), f(3), f(4), f(5), f(6));
  const auto gb = gru({f(0), f(1), f(2), f(3), f(4), f(5), f(6)});
  expect_near("float gru h", ga.h, gb.h, tol);
  const auto gd = fc::gru_backward<float>(wf, ga.r, ga.z, ga.n, f(5), f(6));
  const auto gdd = fc::gru_backward<double>(wf, gb.r, gb.z, gb.n, f(5), f(6));
  expect_near("float gru grad pre_r", gd.pre_r, gdd.pre_r, tol);
}

// float's tanh, sigmoid and exp are written for the pointwise loops (no libm
// call): within a few ulp of float64's everywhere (an error of several ulp in
// tanh near +-1 was a large error in 1 - tanh^2, and in the gradients), and
// NaN and +-Inf as torch gives them.
double ulps(float got, double want) {
  const float w = static_cast<float>(want);
  if (got == w) return 0;
  const double ulp = std::nextafter(std::abs(w), INFINITY) - std::abs(w);
  return std::abs(got - want) / (ulp > 0 ? ulp : 1e-45);
}

void expect_ulps(const std::string& what, double worst, double limit) {
  ++checks;
  if (worst <= limit) return;
  ++failures;
  std::printf("FAIL %-28s %.2f ulp > %.2f\n", what.c_str(), worst, limit);
}

void expect_same(const std::string& what, float got, float want) {
  ++checks;
  if (got == want || (std::isnan(got) && std::isnan(want))) return;
  ++failures;
  std::printf("FAIL %-28s got %g want %g\n", what.c_str(), got, want);
}

void test_float_activations() {
  double worst_tanh = 0, worst_sigmoid = 0, worst_exp = 0;
  for (int k = -2000000; k <= 2000000; ++k) {
    const float x = 20.f * static_cast<float>(k) / 2000000.f;  // [-20, 20], step 1e-5
    worst_tanh = std::max(worst_tanh, ulps(fc::tanh<float>(x), std::tanh(double(x))));
    worst_sigmoid =
        std::max(worst_sigmoid, ulps(fc::sigmoid<float>(x), 1 / (1 + std::exp(-double(x)))));
    worst_exp = std::max(worst_exp, ulps(fc::exp_float(4.f * x), std::exp(4.0 * double(x))));
  }
  // exp where its result is a normal float: up to ln(FLT_MAX) less the last
  // half step of n, down to ln(FLT_MIN)
  for (int k = -1000000; k <= 1000000; ++k) {
    const float x = 87.9f * static_cast<float>(k) / 1000000.f;
    if (x < -87.33f || x > 88.37f) continue;
    worst_exp = std::max(worst_exp, ulps(fc::exp_float(x), std::exp(double(x))));
  }
  expect_ulps("float tanh", worst_tanh, 1.5);
  expect_ulps("float sigmoid", worst_sigmoid, 3);
  expect_ulps("float exp", worst_exp, 1.5);
  const float inf = INFINITY, nan = NAN;
  expect_same("tanh(+inf)", fc::tanh<float>(inf), 1.f);
  expect_same("tanh(-inf)", fc::tanh<float>(-inf), -1.f);
  expect_same("tanh(nan)", fc::tanh<float>(nan), nan);
  expect_same("sigmoid(+inf)", fc::sigmoid<float>(inf), 1.f);
  expect_same("sigmoid(-inf)", fc::sigmoid<float>(-inf), 0.f);
  expect_same("sigmoid(nan)", fc::sigmoid<float>(nan), nan);
  expect_same("exp(-inf)", fc::exp_float(-inf), 0.f);
  expect_same("exp(-87.7), below FLT_MIN", fc::exp_float(-87.7f), 0.f);
  expect_same("sigmoid(-88.4)", fc::sigmoid<float>(-88.4f), 0.f);
  expect_same("sigmoid(88.4)", fc::sigmoid<float>(88.4f), 1.f);
  expect_same("exp(+inf)", fc::exp_float(inf), inf);
  expect_same("exp(nan)", fc::exp_float(nan), nan);
  expect_same("relu(nan)", fc::relu<float>(nan), nan);
}

}  // namespace

int main() {
  test_float_activations();
  test_rnn();
  test_lstm();
  test_gru();
  test_float();
  std::printf("test_cells: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
