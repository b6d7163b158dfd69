#pragma once
// The CUDA backend: what csrc/backend.h asks of a device, as the per-step
// design of haste and of cuDNN's standard algorithm runs it: every GEMM on
// cuBLAS (the large input and weight-gradient GEMMs as the per-step ones),
// and each step's pointwise pass as one kernel launch over (b, j) that calls
// the cells' functors (pointwise.h). Every call is queued on the current
// stream of the op's device (register.h sets the device guard); nothing
// waits for the device or reads its memory from the host.
//
// One object per op call, made from the call's input: it makes the input's
// device current for the call (so the current stream and cuBLAS handle are
// that device's), and holds the call's temporaries, caching-allocator tensors
// of that device: their memory goes back to the allocator when the call
// returns, and the allocator gives it again only to work queued after it on
// the same stream, so a kernel still running never sees it reused.
//
// Device code lives in kernels.cuh, the literal CUDA API calls in api.h's
// two implementations; this file is shared by the device and the emulated
// build (csrc/emulated/), which runs it on the CPU.

#include <ATen/ATen.h>
#include <ATen/DeviceGuard.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "../backend.h"
#include "../temporaries.h"
#include "api.h"
#include "dtypes.h"
#include "kernels.cuh"

namespace fastrnn {

class CUDABackend {
 public:
  // float16 and bfloat16 as well as float and double (backend.h): stored in
  // them, computed in float.
  static constexpr bool kHalfTypes = cuda::kHalfTypes;

  explicit CUDABackend(const at::Tensor& input) : guard_(input.device()), device_(input.device()) {}

  // Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, with row
  // strides lda, ldb, ldc; any sizes. cuBLAS is column-major, where the
  // row-major X is X^T with the same stride: so it computes
  // C^T = op(B)^T op(A)^T, B first. C is scalar_t, or acc_t (float) for
  // float16 and bfloat16 inputs; alpha and beta are acc_t.
  template <typename scalar_t, typename c_t>
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
            std::type_identity_t<at::opmath_type<scalar_t>> alpha, const scalar_t* a, int64_t lda,
            const scalar_t* b, int64_t ldb, std::type_identity_t<at::opmath_type<scalar_t>> beta,
            c_t* c, int64_t ldc) {
    static_assert(std::is_same_v<c_t, scalar_t> || std::is_same_v<c_t, at::opmath_type<scalar_t>>);
    if (m <= 0 || n <= 0) return;
    if (k <= 0) return cuda::launch_2d(m, n, cuda::Scale<c_t>{beta, c, ldc});
    device::gemm(trans_b, trans_a, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
  }

  // A step's weight as it is given: cuBLAS reads W or W^T alike, so nothing
  // is packed. data: W [k, slices * H] row-major, or (transposed) W^T.
  struct StepWeight {
    const void* data = nullptr;
    bool transposed = false;
  };

  template <typename scalar_t>
  StepWeight step_weight(Scratch, const scalar_t* w, bool transposed, int64_t, int64_t, int64_t,
                         int64_t) {
    return {w, transposed};
  }

  // C[0:rows, 0:slices*H] (+)= A[0:rows, 0:k] W, one GEMM for every slice,
  // then f(b, j) for b < f_rows, j < H: one kernel launch.
  // c_t: scalar_t, or acc_t (float) for float16 and bfloat16.
  template <typename scalar_t, typename c_t, class F>
  void gemm_pointwise(int64_t rows, int64_t H, int64_t slices, int64_t k, const scalar_t* a,
                      int64_t lda, const StepWeight& w, bool add_c, c_t* c, int64_t ldc,
                      int64_t f_rows, const F& f) {
    const int64_t n = slices * H;
    gemm<scalar_t, c_t>(false, w.transposed, rows, n, k, 1, a, lda,
                        static_cast<const scalar_t*>(w.data), w.transposed ? k : n, add_c ? 1 : 0,
                        c, ldc);
    cuda::launch_2d(f_rows, H, f);
  }

  at::Tensor workspace(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return at::empty(sizes, options);
  }

  // numel elements of T on the call's device, uninitialised, held until this
  // object (the op call) ends.
  template <typename T>
  T* temporary(Scratch, int64_t numel) {
    temporaries_.push_back(
        at::empty({numel * int64_t(sizeof(T))}, at::TensorOptions(at::kByte).device(device_)));
    return static_cast<T*>(temporaries_.back().mutable_data_ptr());
  }

  // The input projection and the gradient GEMMs over whole steps run per
  // chunk of at least this many rows: large enough that each GEMM fills the
  // device, and a bound on the [chunk rows, G*H] projection's memory, which
  // over all rows of a long sequence would be larger than the output.
  int64_t chunk_rows() const { return 16384; }

  // The elementwise primitives: one launch each (kernels.cuh).

  // dst in S or, from float, in float16 or bfloat16 (rounded to nearest).
  template <typename S, typename D>
  void copy_2d(int64_t rows, int64_t cols, const S* src, int64_t ld_src, D* dst, int64_t ld_dst) {
    static_assert(std::is_same_v<S, D> || std::is_same_v<S, at::opmath_type<D>>);
    cuda::launch_2d(rows, cols, cuda::Copy2d<S, D>{src, ld_src, dst, ld_dst});
  }

  // dst[c, r] = src[r, c] for r < rows, c < cols
  template <typename T>
  void transpose(int64_t rows, int64_t cols, const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
    cuda::launch_2d(cols, rows, cuda::Transpose<T>{src, ld_src, dst, ld_dst});
  }

  template <typename T>
  void fill_2d(int64_t rows, int64_t cols, std::type_identity_t<T> value, T* dst, int64_t ld) {
    cuda::launch_2d(rows, cols, cuda::Fill<T>{value, dst, ld});
  }

  template <typename T>
  void add(int64_t n, std::type_identity_t<const T*> a, std::type_identity_t<const T*> b, T* dst) {
    cuda::launch_2d(1, n, cuda::Add<T>{a, b, dst});
  }

  // One thread per column sums its rows in order: the same sums in every run.
  template <typename T>
  void column_sums(const T* a, int64_t rows, int64_t cols, double* sums) {
    if (rows <= 0) return;
    cuda::launch_2d(1, cols, cuda::ColumnSums<T>{a, rows, cols, sums});
  }

  template <typename T>
  void round(int64_t n, const double* src, T* dst) {
    cuda::launch_2d(1, n, cuda::Round<T>{src, dst});
  }

 private:
  at::OptionalDeviceGuard guard_;
  at::Device device_;
  std::vector<at::Tensor> temporaries_;  // this call's temporaries, in order of request
};

static_assert(BackendFor<CUDABackend, float>);
static_assert(BackendFor<CUDABackend, double>);
static_assert(BackendFor<CUDABackend, c10::Half>);
static_assert(BackendFor<CUDABackend, c10::BFloat16>);

}  // namespace fastrnn
