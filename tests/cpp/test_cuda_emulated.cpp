// The CUDA backend's primitives (csrc/cuda/backend.h) on the emulated device,
// each against ATen on the same values: the GEMM in every transpose and
// leading-dimension case (cuBLAS's column-major arguments, which the backend
// swaps), also on float16 and bfloat16 (summed in float32, C rounded once), gemm_pointwise's single
// pass over (b, j), the elementwise kernels, sizes past a grid dimension's limit, and the
// temporaries. Built and run by tools/emulated.py in both block orders; the op-level contract runs
// through the same backend in the whole test suite.

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>

#include "cuda/backend.h"
#include "expect.h"

namespace {

using fastrnn::CUDABackend;
using fastrnn::Scratch;

using fastrnn::testing::expect;

// |got - want| <= tol * bound elementwise, bound the size of the terms that
// were summed (rounding errors scale with it, not with the result); tol 0:
// exactly equal. NaN equals NaN.
void expect_close(const std::string& what, const at::Tensor& got, const at::Tensor& want,
                  double tol, const at::Tensor& bound = at::Tensor()) {
  expect(what + " (shape)", got.sizes() == want.sizes());
  if (got.sizes() != want.sizes()) return;
  const at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
  const at::Tensor both_nan = g.isnan() & w.isnan();
  const at::Tensor diff = (g - w).abs().masked_fill(both_nan, 0);
  const at::Tensor limit = bound.defined() ? tol * bound : at::full_like(w, tol) * w.abs();
  const bool ok = (tol == 0 ? diff.eq(0) : diff.le(limit)).all().item<bool>();
  if (!ok) std::printf("  max |diff| %.3e\n", diff.nan_to_num(INFINITY).max().item<double>());
  expect(what, ok);
}

// A [rows, cols] row-major view with row stride ld >= cols, of random values,
// in a buffer whose padding holds NaN: a kernel that reads it shows.
at::Tensor padded(int64_t rows, int64_t cols, int64_t ld, at::ScalarType type) {
  at::Tensor buffer = at::full({std::max<int64_t>(rows, 1) * ld}, NAN, at::TensorOptions(type));
  at::Tensor view = buffer.as_strided({rows, cols}, {ld, 1});
  view.copy_(at::randn({rows, cols}, at::TensorOptions(type)));
  return view;
}

std::string name(const char* what, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  return std::string(what) + " trans " + std::to_string(ta) + std::to_string(tb) + " m " +
         std::to_string(m) + " n " + std::to_string(n) + " k " + std::to_string(k);
}

// Row-major C = alpha op(A) op(B) + beta C against the float64 product of
// the same values, with padded leading dimensions; beta 0 over a NaN C must
// not read it. Within the rounding of the sums in acc_t (at::opmath_type:
// float for float16 and bfloat16) and, where C is narrower than acc_t, one
// rounding of C: a GEMM that summed in 16 bits, or rounded C more than once,
// misses it from k of a few dozen on. c_t: scalar_t, or float for float16
// and bfloat16.
template <typename scalar_t, typename c_t = scalar_t>
void test_gemm() {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr double eps_sums = std::numeric_limits<acc_t>::epsilon();
  const double rounding_c =
      std::is_same_v<c_t, acc_t> ? 0.0 : double(std::numeric_limits<c_t>::epsilon()) / 2;
  const auto type = c10::CppTypeToScalarType<scalar_t>::value;
  const auto c_type = c10::CppTypeToScalarType<c_t>::value;
  const std::string types = std::string(" ") + c10::toString(type) + " -> " + c10::toString(c_type);
  const int64_t sizes[][3] = {{1, 1, 1},    {3, 5, 7}, {17, 1, 33}, {1, 40, 9}, {64, 48, 130},
                              {8, 8, 1000}, {0, 4, 3}, {4, 0, 3},   {4, 3, 0}};
  for (const auto& s : sizes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (double beta : {0.0, 1.0, -0.5}) {
          CUDABackend be(at::empty({0}, type));
          const at::Tensor a = padded(ta ? k : m, ta ? m : k, (ta ? m : k) + 3, type);
          const at::Tensor b = padded(tb ? n : k, tb ? k : n, (tb ? k : n) + 2, type);
          at::Tensor c = padded(m, n, n + 5, c_type);
          if (beta == 0) c.fill_(NAN);
          const at::Tensor op_a = (ta ? a.t() : a).to(at::kDouble);
          const at::Tensor op_b = (tb ? b.t() : b).to(at::kDouble);
          const double alpha = 1.5;
          at::Tensor want = at::matmul(op_a, op_b) * alpha;
          at::Tensor bound = at::matmul(op_a.abs(), op_b.abs()) * alpha;
          if (beta != 0) {
            want += beta * c.to(at::kDouble);
            bound += std::abs(beta) * c.to(at::kDouble).abs();
          }
          be.gemm<scalar_t, c_t>(ta, tb, m, n, k, alpha, a.const_data_ptr<scalar_t>(), a.stride(0),
                                 b.const_data_ptr<scalar_t>(), b.stride(0), beta,
                                 c.mutable_data_ptr<c_t>(), c.stride(0));
          expect_close(name("gemm", ta, tb, m, n, k) + " beta " + std::to_string(beta) + types, c,
                       want, 1, rounding_c * want.abs() + (k + 2) * eps_sums * bound);
        }
      }
    }
  }
}

// Writes f(b, j) = 2 c[b, j] + 1 once per element: a second visit shows.
template <typename scalar_t>
struct Twice {
  scalar_t* c;
  int64_t ldc;
  C10_HOST_DEVICE void operator()(int64_t b, int64_t j) const {
    c[b * ldc + j] = 2 * c[b * ldc + j] + 1;
  }
};

// One step: C[0:rows, 0:slices*H] (+)= A W (W given as it is or transposed),
// then f over [f_rows, H] only.
template <typename scalar_t>
void test_gemm_pointwise() {
  constexpr double eps = std::numeric_limits<scalar_t>::epsilon();
  const auto type = c10::CppTypeToScalarType<scalar_t>::value;
  const int64_t H = 37, slices = 3, k = 19;
  for (int64_t rows : {0, 1, 9}) {
    for (bool transposed : {false, true}) {
      for (bool add_c : {false, true}) {
        CUDABackend be(at::empty({0}));
        const int64_t f_rows = rows == 0 ? 4 : rows - 1;
        const at::Tensor a = padded(rows, k, k + 1, type);
        const at::Tensor w = at::randn({k, slices * H}, at::TensorOptions(type));
        const at::Tensor w_given = transposed ? w.t().contiguous() : w;
        at::Tensor c = padded(std::max(rows, f_rows), slices * H, slices * H + 4, type);
        at::Tensor want = c.to(at::kDouble).clone();
        at::Tensor bound = want.abs();  // of the terms summed, doubled where f ran
        if (rows > 0) {
          const at::Tensor prod = at::matmul(a.to(at::kDouble), w.to(at::kDouble));
          const at::Tensor terms = at::matmul(a.to(at::kDouble).abs(), w.to(at::kDouble).abs());
          want.narrow(0, 0, rows).copy_(add_c ? want.narrow(0, 0, rows) + prod : prod);
          bound.narrow(0, 0, rows).copy_(add_c ? bound.narrow(0, 0, rows) + terms : terms);
        }
        want.narrow(0, 0, f_rows).narrow(1, 0, H).mul_(2).add_(1);
        bound.narrow(0, 0, f_rows).narrow(1, 0, H).mul_(2).add_(1);
        const auto w_step =
            be.step_weight<scalar_t>(Scratch::kStepWeight, w_given.const_data_ptr<scalar_t>(),
                                     transposed, k, H, slices, rows);
        be.gemm_pointwise<scalar_t>(rows, H, slices, k, a.const_data_ptr<scalar_t>(), a.stride(0),
                                    w_step, add_c, c.mutable_data_ptr<scalar_t>(), c.stride(0),
                                    f_rows,
                                    Twice<scalar_t>{c.mutable_data_ptr<scalar_t>(), c.stride(0)});
        expect_close("gemm_pointwise rows " + std::to_string(rows) + " transposed " +
                         std::to_string(transposed) + " add_c " + std::to_string(add_c),
                     c, want, (k + 4) * eps, bound);
      }
    }
  }
}

template <typename scalar_t>
void test_elementwise() {
  const auto type = c10::CppTypeToScalarType<scalar_t>::value;
  const std::string t = std::string(" ") + c10::toString(type);
  CUDABackend be(at::empty({0}));
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {5, 300}, {300, 7}, {0, 5}}) {
    const std::string shape = " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    const at::Tensor src = padded(rows, cols, cols + 3, type);
    at::Tensor dst = padded(rows, cols, cols + 2, type);
    be.copy_2d(rows, cols, src.const_data_ptr<scalar_t>(), src.stride(0),
               dst.mutable_data_ptr<scalar_t>(), dst.stride(0));
    expect_close("copy_2d" + shape + t, dst, src, 0);
    // only the view's elements are written: the padding keeps its NaN
    expect("copy_2d padding" + shape + t, rows == 0 || std::isnan(dst.data_ptr<scalar_t>()[cols]));
    if constexpr (!std::is_same_v<at::opmath_type<scalar_t>, scalar_t>) {
      // from float, rounded to nearest (as ATen's conversion rounds)
      const at::Tensor wide = padded(rows, cols, cols + 1, at::kFloat);
      be.copy_2d(rows, cols, wide.const_data_ptr<float>(), wide.stride(0),
                 dst.mutable_data_ptr<scalar_t>(), dst.stride(0));
      expect_close("copy_2d from float" + shape + t, dst, wide.to(type), 0);
    }

    at::Tensor dst_t = padded(cols, rows, rows + 1, type);
    be.transpose(rows, cols, src.const_data_ptr<scalar_t>(), src.stride(0),
                 dst_t.mutable_data_ptr<scalar_t>(), dst_t.stride(0));
    expect_close("transpose" + shape + t, dst_t, src.t(), 0);

    be.fill_2d(rows, cols, scalar_t(-2.5), dst.mutable_data_ptr<scalar_t>(), dst.stride(0));
    expect_close("fill_2d" + shape + t, dst, at::full({rows, cols}, -2.5, type), 0);
    at::Tensor sums = padded(1, rows, rows + 1, at::kDouble);
    be.fill_2d(1, rows, 0.0, sums.mutable_data_ptr<double>(), rows + 1);
    expect_close("fill_2d double" + shape + t, sums, at::zeros({1, rows}, at::kDouble), 0);

    // column sums accumulate onto what the sums hold, in double
    at::Tensor col = at::randn({cols}, at::kDouble);
    const at::Tensor col_want = col + src.to(at::kDouble).sum(0);
    const at::Tensor col_bound = col.abs() + src.to(at::kDouble).abs().sum(0);
    be.column_sums(src.contiguous().const_data_ptr<scalar_t>(), rows, cols,
                   col.mutable_data_ptr<double>());
    expect_close("column_sums" + shape + t, col, col_want,
                 (rows + 2) * std::numeric_limits<double>::epsilon(), col_bound);
  }
  for (int64_t n : {0, 1, 1000}) {
    const std::string size = " n " + std::to_string(n);
    const at::Tensor a = at::randn({n}, type), b = at::randn({n}, type);
    at::Tensor dst = at::full({n}, NAN, type);
    be.add(n, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
           dst.mutable_data_ptr<scalar_t>());
    expect_close("add" + size + t, dst, a + b, 0);
    be.add<scalar_t>(n, nullptr, b.const_data_ptr<scalar_t>(), dst.mutable_data_ptr<scalar_t>());
    expect_close("add, a absent" + size + t, dst, b, 0);
    be.add<scalar_t>(n, a.const_data_ptr<scalar_t>(), nullptr, dst.mutable_data_ptr<scalar_t>());
    expect_close("add, b absent" + size + t, dst, a, 0);
    be.add<scalar_t>(n, nullptr, nullptr, dst.mutable_data_ptr<scalar_t>());
    expect_close("add, both absent" + size + t, dst, at::zeros({n}, type), 0);
    const at::Tensor values = at::randn({n}, at::kDouble);
    be.round(n, values.const_data_ptr<double>(), dst.mutable_data_ptr<scalar_t>());
    expect_close("round" + size + t, dst, values.to(type), 0);
  }
}

// Counts the visits of each element: exactly one each, also where the grid
// is clamped to its limits (more than 65535 blocks of columns, so the
// kernel's column loop strides) and for one wide row (the 1-D primitives).
struct Visit {
  int32_t* count;
  int64_t cols;
  C10_HOST_DEVICE void operator()(int64_t r, int64_t c) const { ++count[r * cols + c]; }
};

void test_grid_limits() {
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 65535 * 256 + 1000}, {3, 40000}, {70000, 3}, {100, 33}}) {
    at::Tensor count = at::zeros({rows, cols}, at::kInt);
    fastrnn::cuda::launch_2d(rows, cols, Visit{count.mutable_data_ptr<int32_t>(), cols});
    expect("each element once [" + std::to_string(rows) + ", " + std::to_string(cols) + "]",
           count.eq(1).all().item<bool>());
  }
}

// The emulation itself: every (block, thread) of a 3-D grid runs once, in
// the order FASTRNN_EMULATED_ORDER asks for (forward: block x fastest, then
// y, z; thread x fastest within a block; reversed: the other way round).
__global__ void record_order(int64_t* order, int64_t* next) {
  const int64_t block = (int64_t(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int64_t thread =
      (int64_t(threadIdx.z) * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  order[block * blockDim.x * blockDim.y * blockDim.z + thread] = (*next)++;
}

void test_launch_order() {
  const dim3 grid(3, 2, 2), block(4, 2, 1);
  const int64_t n = 3 * 2 * 2 * 4 * 2;
  at::Tensor order = at::full({n}, -1, at::kLong);
  int64_t next = 0;
  fastrnn::device::launch(&record_order, grid, block, order.mutable_data_ptr<int64_t>(), &next);
  const char* env = std::getenv("FASTRNN_EMULATED_ORDER");
  const bool reversed = env != nullptr && std::string(env) == "reversed";
  const at::Tensor forward = at::arange(n, at::kLong);
  expect(std::string("launch order ") + (reversed ? "reversed" : "forward"),
         at::equal(order, reversed ? forward.flip(0) : forward));
}

void test_temporaries() {
  CUDABackend be(at::empty({0}));
  float* a = be.temporary<float>(Scratch::kStates, 1000);
  double* b = be.temporary<double>(Scratch::kBiasGrad, 10);
  float* c = be.temporary<float>(Scratch::kStates, 1000);  // the same slot twice: two buffers
  std::fill(a, a + 1000, 1.f);
  std::fill(b, b + 10, 2.0);
  std::fill(c, c + 1000, 3.f);
  expect("temporaries are distinct and live", a[999] == 1.f && b[9] == 2.0 && c[0] == 3.f);
  expect("temporaries aligned", reinterpret_cast<uintptr_t>(b) % alignof(double) == 0);
  const at::Tensor ws = be.workspace({3, 4, 5}, at::TensorOptions(at::kDouble));
  expect("workspace", ws.sizes() == at::IntArrayRef({3, 4, 5}) && ws.scalar_type() == at::kDouble);
}

}  // namespace

int main() {
  at::manual_seed(0);
  test_gemm<double>();
  test_gemm<float>();
  test_gemm<c10::Half>();
  test_gemm<c10::Half, float>();
  test_gemm<c10::BFloat16>();
  test_gemm<c10::BFloat16, float>();
  test_gemm_pointwise<double>();
  test_gemm_pointwise<float>();
  test_elementwise<double>();
  test_elementwise<float>();
  test_elementwise<c10::Half>();
  test_elementwise<c10::BFloat16>();
  test_grid_limits();
  test_launch_order();
  test_temporaries();
  return fastrnn::testing::report();
}
