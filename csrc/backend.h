#pragma once
// The Backend contract: what the recurrence driver (recurrence.h) asks of a
// device, declared once, as a concept that every backend must satisfy
// (static_assert next to each backend; Recurrence requires it too). A Backend
// object lives for one op call: RNNOps (ops_impl.h) constructs it from the
// call's input tensor once the arguments are checked, and the driver makes
// every call through it. It may hold that call's temporaries (a CUDA backend
// keeps caching-allocator tensors alive until the call returns, so their
// memory is reused only by work queued after them on the same stream).
//
// Every pointer is device memory of the backend, row-major with the leading
// dimensions (row strides, in elements) given, and every call is ordered
// after the calls before it (a CPU backend runs it at once, a CUDA backend
// queues it on the current stream). Nothing is read back to the host: the
// driver never touches buffer contents itself. Any size may be 0 (a copy,
// fill, sum of no elements does nothing; gemm and gemm_pointwise say what
// they do then); a call's source and destination never overlap.
//
// The dtypes a backend takes: float and double, and float16 and bfloat16
// (c10::Half, c10::BFloat16) where it declares `static constexpr bool
// kHalfTypes = true` (takes_half_types), on the machines it says
// (takes_dtype). Those are storage types only: every
// buffer holds them, the pointwise math runs in acc_t = at::opmath_type
// (float), and GEMMs accumulate in float, with float alpha and beta. acc_t is
// the type itself for float and double.

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include <concepts>
#include <cstdint>
#include <vector>

#include "temporaries.h"

namespace fastrnn {

// The pointwise functor shape gemm_pointwise takes: f(b, j) for one (batch
// row, hidden unit) element (pointwise.h's ForwardFn, BackwardFn).
struct PointwiseArchetype {
  void operator()(int64_t, int64_t) const {}
};

// Whether backend B has kernels for float16 and bfloat16 (B::kHalfTypes),
// besides float and double.
template <class B>
constexpr bool takes_half_types() {
  if constexpr (requires { B::kHalfTypes; }) {
    return B::kHalfTypes;
  } else {
    return false;
  }
}

// What a backend that stores scalar_t in a narrower type than acc_t (float16
// and bfloat16) gives besides: GEMM results that are not rounded to scalar_t,
// kept in acc_t: the gates' projections, which the pointwise pass adds in
// acc_t, and the weight gradients, summed over chunks of steps and rounded once.
// Whether backend B's kernels take `type` on this machine: float and double
// always; float16 and bfloat16 where B has kernels for them and, if B has
// `static bool takes_half(at::ScalarType)`, that says so at run time (a CPU
// backend takes them only where the processor has units for them).
template <class B>
bool takes_dtype(at::ScalarType type) {
  if (type == at::kFloat || type == at::kDouble) return true;
  if (type != at::kHalf && type != at::kBFloat16) return false;
  if constexpr (!takes_half_types<B>()) {
    return false;
  } else if constexpr (requires { B::takes_half(type); }) {
    return B::takes_half(type);
  } else {
    return true;
  }
}

// The dtypes takes_dtype<B> accepts, in the order float32, float64, float16, bfloat16.
template <class B>
std::vector<at::ScalarType> taken_dtypes() {
  std::vector<at::ScalarType> types;
  for (at::ScalarType t : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    if (takes_dtype<B>(t)) types.push_back(t);
  }
  return types;
}

template <class B, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
concept NarrowStorageFor =
    requires(B& be, Scratch slot, bool flag, int64_t n, acc_t acc, const scalar_t* src,
             const acc_t* src_acc, acc_t* dst_acc, scalar_t* dst) {
      // gemm and gemm_pointwise with C in acc_t, A and B (and W) in scalar_t.
      be.gemm(flag, flag, n, n, n, acc, src, n, src, n, acc, dst_acc, n);
      be.gemm_pointwise(n, n, n, n, src, n, be.step_weight(slot, src, flag, n, n, n, n), flag,
                        dst_acc, n, n, PointwiseArchetype{});
      { be.template temporary<acc_t>(slot, n) } -> std::same_as<acc_t*>;
      // copy_2d from acc_t into scalar_t, rounded to nearest.
      be.copy_2d(n, n, src_acc, n, dst, n);
    };

template <class B, typename scalar_t>
concept BackendFor =
    // B be(input): for one op call, input the op's (checked, contiguous) input
    // tensor, whose device and dtype every buffer of the call has.
    std::constructible_from<B, const at::Tensor&> &&
    (std::same_as<at::opmath_type<scalar_t>, scalar_t> || NarrowStorageFor<B, scalar_t>) &&
    requires(B& be, Scratch slot, bool flag, int64_t n, scalar_t value,
             at::opmath_type<scalar_t> acc, const scalar_t* src, scalar_t* dst, const double* src_d,
             double* dst_d, at::IntArrayRef sizes, const at::TensorOptions& options) {
      // Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C: gemm(trans_a,
      // trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); any sizes (k = 0
      // leaves beta C; beta = 0 writes C without reading it). alpha and beta
      // in acc_t; the products are summed in acc_t and C rounded once.
      be.gemm(flag, flag, n, n, n, acc, src, n, src, n, acc, dst, n);
      // The weight of every step's GEMM, W[k, slices * H] (given row-major, or as
      // row-major W^T [slices * H, k] when transposed), laid out for
      // gemm_pointwise: step_weight(slot, w, transposed, k, H, slices, rows),
      // rows: about how many rows of A gemm_pointwise will take with it (a hint
      // for splitting the work, never a bound). A layout it makes goes in temporary
      // `slot`; w itself must stay valid and unchanged while the StepWeight is used.
      typename B::StepWeight;
      { be.step_weight(slot, src, flag, n, n, n, n) } -> std::same_as<typename B::StepWeight>;
      // C[0:rows, s*H + j] (+)= A[0:rows, 0:k] W[0:k, s*H + j] for each slice s <
      // slices and j < H (+= when add_c), then f(b, j) for b < f_rows, j < H:
      // gemm_pointwise(rows, H, slices, k, a, lda, w, add_c, c, ldc, f_rows, f).
      // rows may be 0 (then f alone runs); f(b, j) reads only row b's columns
      // s*H + j of C, for every s, and writes nothing that another (b, j) reads,
      // so a backend may run the pass per block of j right after that block's
      // GEMM, in any order of elements.
      be.gemm_pointwise(n, n, n, n, src, n, be.step_weight(slot, src, flag, n, n, n, n), flag, dst,
                        n, n, PointwiseArchetype{});
      // The workspace saved for backward: an uninitialised tensor of the call's
      // device that outlives the call: workspace(sizes, options).
      { be.workspace(sizes, options) } -> std::same_as<at::Tensor>;
      // numel elements of T, uninitialised, valid until the call returns (the
      // Backend object is destroyed); one buffer per slot, a later request for
      // the same slot in the same call may reuse it: temporary<T>(slot, numel).
      { be.template temporary<scalar_t>(slot, n) } -> std::same_as<scalar_t*>;
      { be.template temporary<double>(slot, n) } -> std::same_as<double*>;
      // The fewest rows of one chunk of consecutive steps: the driver runs the
      // forward's input projection, and the backward's grad_x and weight
      // gradients, per chunk of steps (recurrence.h, Chunk), and sizes their
      // temporaries by it. Any value >= 1; one as large as INT64_MAX makes a
      // single chunk of all N rows (one GEMM each): chunk_rows().
      { be.chunk_rows() } -> std::same_as<int64_t>;
      // dst[r, c] = src[r, c] for r < rows, c < cols: copy_2d(rows, cols, src,
      // ld_src, dst, ld_dst); a contiguous copy of n elements is copy_2d(1, n,
      // src, n, dst, n).
      be.copy_2d(n, n, src, n, dst, n);
      // dst[c, r] = src[r, c] for r < rows, c < cols, src [rows, cols], dst
      // [cols, rows]: transpose(rows, cols, src, ld_src, dst, ld_dst).
      be.transpose(n, n, src, n, dst, n);
      // dst[r, c] = value for r < rows, c < cols: fill_2d(rows, cols, value, dst, ld).
      be.fill_2d(n, n, value, dst, n);
      be.fill_2d(n, n, 0.0, dst_d, n);
      // dst[i] = a[i] + b[i] for i < n, a or b nullptr read as zeros (the sum is
      // still taken: a[i] + 0, so -0 becomes +0; both nullptr write +0):
      // add(n, a, b, dst), where a or b may be a nullptr literal.
      be.add(n, src, src, dst);
      be.add(n, src, nullptr, dst);
      // sums[c] += sum over r < rows of a[r, c], for c < cols, a [rows, cols]
      // contiguous, sums [cols] in double: column_sums(a, rows, cols, sums).
      be.column_sums(src, n, n, dst_d);
      // dst[i] = scalar_t(src[i]) for i < n, rounded to nearest: round(n, src, dst).
      be.round(n, src_d, dst);
    };

}  // namespace fastrnn
