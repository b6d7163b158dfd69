#pragma once
// What the CPU does differently: GEMMs on raw pointers with no dispatcher call
// or allocation per time step, and the pointwise pass as a parallel loop
// over (b, j) (cpu::parallel_for: split only while the cores are free,
// threads.h). float GEMMs use oneDNN's batch-reduce GEMM micro-kernel
// (at::native::cpublas::brgemm), tiled across threads here: at the per-step
// shapes it beats MKL's sgemm, which takes a generic path on AMD processors and
// costs more per call at batch 1 (figures: benchmarks/README.md, "Measurements
// behind the code's choices"). double GEMMs go to BLAS. The other primitives
// of the contract (../backend.h) are plain loops: at batch 1 the fixed cost of
// an ATen op is of the order of the whole op.

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../backend.h"
#include "gemm_calls.h"
#include "isa.h"
#include "pool.h"
#include "scratch.h"
#include "threads.h"
#include "transpose.h"

namespace fastrnn {

// Holds only the call's choice of threads (threads.h): its temporaries are
// thread_local scratch (scratch.h), whose slots a later call on the thread
// reuses.
struct CPUBackend {
  explicit CPUBackend(const at::Tensor& /*input*/) {}

  // float16 and bfloat16 as well as float and double (../backend.h): stored
  // in them, GEMMs summing in float on the CPU's bfloat16/float16 units (the
  // steps' GEMMs on AMX through oneDNN's brgemm where the weights pack for it,
  // the others on MKL's low-precision GEMM) and the pointwise math in float.
  // Their kernels run where the CPU has those units (takes_half); elsewhere
  // Python runs the float kernels on them (fastrnn/ops.py).
  static constexpr bool kHalfTypes = true;
  static bool takes_half(at::ScalarType type) { return cpu::native_half(type); }

  // Row-major C[m, n] = alpha * op(A)[m, k] op(B)[k, n] + beta * C, with
  // leading dimensions (row strides) lda, ldb, ldc; any sizes (gemm_calls.h
  // keeps each library call within its limits). C is scalar_t, or float for
  // float16 and bfloat16 operands; alpha and beta are acc_t.
  template <typename scalar_t, typename c_t>
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
            std::type_identity_t<at::opmath_type<scalar_t>> alpha, const scalar_t* a, int64_t lda,
            const scalar_t* b, int64_t ldb, std::type_identity_t<at::opmath_type<scalar_t>> beta,
            c_t* c, int64_t ldc) {
    static_assert(std::is_same_v<c_t, scalar_t> || std::is_same_v<c_t, at::opmath_type<scalar_t>>);
    if constexpr (!std::is_same_v<scalar_t, at::opmath_type<scalar_t>>) {
      return narrow_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
      if constexpr (std::is_same_v<scalar_t, float>) {
        if (brgemm_ok() && trans_a && !trans_b && alpha == 1.f && (beta == 0.f || beta == 1.f)) {
          return transposed_a_brgemm(m, n, k, a, lda, b, ldb, beta == 1.f, c, ldc);
        }
        if (brgemm_ok() && m < kBlasRows && !trans_a && alpha == 1.f &&
            (beta == 0.f || beta == 1.f)) {
          if (!trans_b) return tiled_brgemm(m, n, k, a, lda, b, ldb, beta == 1.f, c, ldc);
          // brgemm takes B as [k, n] rows: transpose it once (k * n copies
          // against 2 * m * k * n flops)
          const at::Tensor b_t = cpu::contiguous(
              at::from_blob(const_cast<float*>(b), {n, k}, {ldb, 1}, at::kFloat).t());
          return tiled_brgemm(m, n, k, a, lda, b_t.const_data_ptr<float>(), n, beta == 1.f, c, ldc);
        }
      }
      cpu::blas_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
  }

  // An uninitialised tensor that outlives the op call (see pool.h).
  at::Tensor workspace(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return cpu::BufferPool::instance().empty(sizes, options);
  }

  // numel elements of T that live only during the current op call (see scratch.h).
  template <typename T>
  T* temporary(Scratch slot, int64_t numel) {
    return cpu::scratch<T>(slot, numel);
  }

  // The input projection and the backward's weight gradients run per chunk
  // of at least this many rows (recurrence.h), each chunk just before (or,
  // backward, just after) the steps that share its buffers, so that the
  // pointwise passes find them in cache: one GEMM over all N rows sends its
  // output to memory and back (26 MB for an LSTM at batch 64, hidden 256,
  // 100 steps; the backward's gate gradients, 13 MB at 50 steps, were read
  // back three times). One GEMM of this many rows runs at full speed (timings
  // in benchmarks/README.md, "Measurements behind the code's choices").
  int64_t chunk_rows() const { return kChunkRows; }

  // The weight of every step's GEMM, W[k, slices * H] (given row-major, or as
  // row-major W^T), laid out for gemm_pointwise, whose work it also splits:
  // with brgemm, the H hidden units go in `blocks` blocks, one per thread
  // that the step's work (at most `rows` rows) pays for, and each
  // (block, slice) gets a contiguous [k, block] panel, so a thread streams its
  // panels in order. Rows of the plain layout lie slices * H floats apart
  // (4 KB for an LSTM of hidden 256), which defeats the hardware prefetcher
  // and maps every row of a tile to the same L1 sets: brgemm on that layout
  // is slower than MKL's sgemm, which packs (see benchmarks/README.md). A
  // single block of short rows (slices * H <= 256) stays plain and takes one
  // brgemm call for all slices: at batch 1 a call's dispatch costs more than
  // its arithmetic.
  // One copy per op call, as the transpose it replaces, into scratch `slot`
  // (none when W is given row-major and stays plain, or BLAS reads it).
  struct StepWeight {
    const void* data = nullptr;  // [blocks, slices, k, block] panels, or W as `transposed` says
    int64_t block = 0;           // hidden units per block (H when plain)
    bool plain = true;           // one GEMM call for all slices
    bool transposed = false;     // plain only: data is W^T (BLAS reads it so, brgemm never)
  };

  template <typename scalar_t>
  StepWeight step_weight(Scratch slot, const scalar_t* w, bool transposed, int64_t k, int64_t H,
                         int64_t slices, int64_t rows) {
    if constexpr (!std::is_same_v<scalar_t, at::opmath_type<scalar_t>>) {
      // float16/bfloat16: panels of kVnniBlock units, each in the pairs-of-rows
      // layout of the matrix units (AMX), where brgemm takes them; else MKL
      // takes W as it is
      if (!packs_vnni<scalar_t>(k)) return {w, H, true, transposed};
      scalar_t* plain = pack_panels(Scratch::kNarrowGemm, w, transposed, k, H, slices, kVnniBlock);
      const int64_t panels = (H + kVnniBlock - 1) / kVnniBlock * slices;
      scalar_t* vnni = cpu::scratch<scalar_t>(slot, panels * k * kVnniBlock);
      cpu::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          at::native::cpublas::pack(k, kVnniBlock, kVnniBlock, kVnniBlock,
                                    c10::CppTypeToScalarType<scalar_t>::value,
                                    c10::CppTypeToScalarType<scalar_t>::value,
                                    plain + p * k * kVnniBlock, vnni + p * k * kVnniBlock);
        }
      });
      return {vnni, kVnniBlock, false, false};
    }
    if (!packs<scalar_t>()) return {w, H, true, transposed};  // BLAS takes W as it is
    if constexpr (std::is_same_v<scalar_t, float>) {
      const int64_t work = 2 * rows * slices * H * k + 64 * rows * H;  // ~flops, pointwise included
      const int64_t threads =
          std::clamp<int64_t>(work / kMinWorkPerThread, 1, at::get_num_threads());
      // an equal share per thread (fewer, larger brgemm calls), a multiple of 16 floats,
      // at most 256
      const int64_t block = std::min<int64_t>(256, ((H + threads - 1) / threads + 15) / 16 * 16);
      if (block >= H && slices * H <= 256) {
        if (!transposed) return {w, H, true, false};
        float* plain = cpu::scratch<float>(slot, k * slices * H);  // [k, slices*H]
        cpu::transpose(w, k, plain, slices * H, slices * H, k);
        return {plain, H, true, false};
      }
      return {pack_panels(slot, w, transposed, k, H, slices, block), block, false, false};
    }
    return {};  // not reached: double never packs
  }

  // One time step, fused per block of hidden units [j0, j1): the GEMM
  //   C[0:rows, s*H + j] (+)= A[0:rows, 0:k] W[0:k, s*H + j]   for each slice s < slices
  // (the gates of those units; W as step_weight laid it out), then f(b, j)
  // for b < f_rows, j in [j0, j1), by the same thread: the pointwise pass
  // reads only the columns its own GEMM tiles produced, while they are in its
  // cache, and each step costs one parallel region instead of two.
  // c_t: scalar_t, or float for float16 and bfloat16 operands.
  template <typename scalar_t, typename c_t, class F>
  void gemm_pointwise(int64_t rows, int64_t H, int64_t slices, int64_t k, const scalar_t* a,
                      int64_t lda, const StepWeight& w, bool add_c, c_t* c, int64_t ldc,
                      int64_t f_rows, const F& f) {
    const scalar_t* w_data = static_cast<const scalar_t*>(w.data);
    if (!packs<scalar_t>() && w.plain) {
      if (rows > 0) {
        gemm<scalar_t, c_t>(false, w.transposed, rows, slices * H, k, 1, a, lda, w_data,
                            w.transposed ? k : slices * H, add_c ? 1 : 0, c, ldc);
      }
      return pointwise(f_rows, H, f);
    }
    if constexpr (!std::is_same_v<scalar_t, at::opmath_type<scalar_t>>) {
      return vnni_gemm_pointwise(rows, H, slices, k, a, lda, w, add_c, c, ldc, f_rows, f);
    }
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (w.plain) {  // one block
        if (rows > 0) {
          cpu::brgemm(rows, slices * H, k, lda, slices * H, ldc, add_c, a, w_data, c);
        }
        return pointwise_block(f, 0, f_rows, 0, H);
      }
      const int64_t blocks = (H + w.block - 1) / w.block;
      cpu::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t blk = begin; blk < end; ++blk) {
          const int64_t j0 = blk * w.block, j1 = std::min(j0 + w.block, H);
          if (rows > 0) {
            for (int64_t sl = 0; sl < slices; ++sl) {
              const float* panel = w_data + (blk * slices + sl) * k * w.block;  // [k, block]
              cpu::brgemm(rows, j1 - j0, k, lda, w.block, ldc, add_c, a, panel, c + sl * H + j0);
            }
          }
          pointwise_block(f, 0, f_rows, j0, j1);
        }
      });
    }
  }

  // dst[r, c] = src[r, c] for r < rows, c < cols (row strides ld_src, ld_dst);
  // dst in S or, from float, in float16 or bfloat16 (rounded to nearest).
  template <typename S, typename D>
  void copy_2d(int64_t rows, int64_t cols, const S* src, int64_t ld_src, D* dst, int64_t ld_dst) {
    static_assert(std::is_same_v<S, D> || std::is_same_v<S, at::opmath_type<D>>);
    if (rows == 1 || (ld_src == cols && ld_dst == cols)) {
      std::copy(src, src + rows * cols, dst);
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(src + r * ld_src, src + r * ld_src + cols, dst + r * ld_dst);
    }
  }

  // dst[c, r] = src[r, c]: dst [cols, rows] is src [rows, cols] transposed.
  template <typename scalar_t>
  void transpose(int64_t rows, int64_t cols, const scalar_t* src, int64_t ld_src, scalar_t* dst,
                 int64_t ld_dst) {
    cpu::transpose(src, ld_src, dst, ld_dst, rows, cols);
  }

  // dst[r, c] = value for r < rows, c < cols (row stride ld).
  template <typename T>
  void fill_2d(int64_t rows, int64_t cols, T value, T* dst, int64_t ld) {
    if (rows == 1 || ld == cols) {
      std::fill(dst, dst + rows * cols, value);
      return;
    }
    for (int64_t r = 0; r < rows; ++r) std::fill(dst + r * ld, dst + r * ld + cols, value);
  }

  // dst[i] = a[i] + b[i], a or b nullptr read as zeros (and still added).
  // scalar_t is dst's: a or b may be given as a nullptr literal.
  template <typename scalar_t>
  void add(int64_t n, const std::type_identity_t<scalar_t>* a,
           const std::type_identity_t<scalar_t>* b, scalar_t* dst) {
    if (a && b) {
      for (int64_t i = 0; i < n; ++i) dst[i] = a[i] + b[i];
    } else if (a) {
      for (int64_t i = 0; i < n; ++i) dst[i] = a[i] + scalar_t(0);
    } else if (b) {
      for (int64_t i = 0; i < n; ++i) dst[i] = scalar_t(0) + b[i];
    } else {
      std::fill(dst, dst + n, scalar_t(0));
    }
  }

  // sums[c] += sum over r < rows of a[r, c], a: [rows, cols] row-major; the
  // threads take blocks of columns. Groups of kGroup rows are summed in
  // acc_t (float for float16 and bfloat16), then added to the double sums:
  // one conversion to double per group, not per element (see
  // benchmarks/README.md).
  template <typename scalar_t>
  void column_sums(const scalar_t* a, int64_t rows, int64_t cols, double* sums) {
    constexpr int64_t kColumns = 64;  // per block: whole cache lines of every row
    constexpr int64_t kGroup = 16;
    const int64_t blocks = (cols + kColumns - 1) / kColumns;
    const int64_t grain =
        std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(rows * kColumns, 1));
    cpu::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t j0 = begin * kColumns; j0 < std::min(end * kColumns, cols); j0 += kColumns) {
        const int64_t width = std::min(kColumns, cols - j0);
        for (int64_t r0 = 0; r0 < rows; r0 += kGroup) {
          at::opmath_type<scalar_t> group[kColumns] = {};
          for (int64_t r = r0; r < std::min(r0 + kGroup, rows); ++r) {
            const scalar_t* row = a + r * cols + j0;
            for (int64_t j = 0; j < width; ++j) group[j] += row[j];
          }
          for (int64_t j = 0; j < width; ++j) sums[j0 + j] += double(group[j]);
        }
      }
    });
  }

  // dst[i] = scalar_t(src[i]), rounded to nearest (float16 and bfloat16 by
  // way of float: c10 converts from float).
  template <typename scalar_t>
  void round(int64_t n, const double* src, scalar_t* dst) {
    for (int64_t i = 0; i < n; ++i)
      dst[i] = scalar_t(static_cast<at::opmath_type<scalar_t>>(src[i]));
  }

 private:
  static constexpr int64_t kChunkRows = 512;

  // Whether this call's loops split across threads (threads.h): chosen when
  // the call makes its backend, reported when it is destroyed.
  cpu::CallThreads threads_;

  // gemm_pointwise's pass without brgemm: f(b, j) for b in [0, rows), j in
  // [0, H), split across threads only when there is enough work to pay for
  // waking them. The loop over j is compiled once per instruction set and
  // vectorised: the cell math is branch-free.
  template <class F>
  static void pointwise(int64_t rows, int64_t H, const F& f) {
    constexpr int64_t kGrain = 4096;  // elements per thread, at least
    cpu::parallel_for(0, rows * H, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin / H; b * H < end; ++b) {
        pointwise_block(f, b, b + 1, std::max(begin - b * H, int64_t(0)), std::min(end - b * H, H));
      }
    });
  }

  // gemm with float16 or bfloat16 operands: MKL sums into float; a C of
  // scalar_t goes through a float copy in scratch, rounded once at the end.
  template <typename scalar_t, typename c_t>
  static void narrow_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb,
                          float beta, c_t* c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    into_c(m, n, beta != 0.f, c, ldc, [&](float* sums, int64_t ld) {
      cpu::half_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, sums, ld);
    });
  }

  // C[0:m, 0:n] (+)= a GEMM's float sums, which gemm(sums, ld) writes (adds
  // to when add_c): straight into a float C; a float16/bfloat16 C through a
  // float copy [m, n] in scratch, rounded once at the end.
  template <typename c_t, class Gemm>
  static void into_c(int64_t m, int64_t n, bool add_c, c_t* c, int64_t ldc, const Gemm& gemm) {
    if constexpr (std::is_same_v<c_t, float>) {
      gemm(c, ldc);
    } else {
      float* sums = cpu::scratch<float>(Scratch::kNarrowGemm, m * n);  // [m, n]
      for (int64_t i = 0; add_c && i < m; ++i) {
        std::copy(c + i * ldc, c + i * ldc + n, sums + i * n);
      }
      gemm(sums, n);
      for (int64_t i = 0; i < m; ++i) std::copy(sums + i * n, sums + (i + 1) * n, c + i * ldc);
    }
  }

  // Hidden units per panel of a float16/bfloat16 step weight: brgemm reads a
  // packed B of at most 64 columns.
  static constexpr int64_t kVnniBlock = 64;

  // Whether float16/bfloat16 step weights are packed for brgemm: where the
  // CPU's matrix units take the type (oneDNN packs for AMX), and the
  // reduction is even (the layout holds pairs of rows of W; oneDNN's kernel
  // fails on an odd one).
  template <typename scalar_t>
  static bool packs_vnni(int64_t k) {
    static const bool ok =
        cpu::native_half(c10::CppTypeToScalarType<scalar_t>::value) &&
        at::native::cpublas::could_pack(c10::CppTypeToScalarType<scalar_t>::value);
    return ok && k % 2 == 0 && k * kVnniBlock <= cpu::kBrgemmMaxElements / 2;
  }

  // gemm_pointwise with a packed float16/bfloat16 weight: per panel of
  // kVnniBlock units, brgemm on the matrix units into float, then the
  // pointwise pass of those units, by the same thread. A C of scalar_t goes
  // through the thread's float copy of its panel, rounded once.
  template <typename scalar_t, typename c_t, class F>
  static void vnni_gemm_pointwise(int64_t rows, int64_t H, int64_t slices, int64_t k,
                                  const scalar_t* a, int64_t lda, const StepWeight& w, bool add_c,
                                  c_t* c, int64_t ldc, int64_t f_rows, const F& f) {
    const scalar_t* panels = static_cast<const scalar_t*>(w.data);  // [blocks, slices, k, block]
    const int64_t blocks = (H + w.block - 1) / w.block;
    const int64_t work = 2 * rows * slices * w.block * k + 64 * f_rows * w.block;  // per block
    const int64_t grain = std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(work, 1));
    // rows per brgemm call: A and C stay below brgemm's largest operand
    const int64_t piece =
        std::max<int64_t>(1, cpu::kBrgemmMaxElements / std::max({lda, ldc, w.block}));
    cpu::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t j0 = blk * w.block, width = std::min(w.block, H - j0);
        for (int64_t sl = 0; sl < slices && rows > 0; ++sl) {
          const scalar_t* panel = panels + (blk * slices + sl) * k * w.block;
          for (int64_t r0 = 0; r0 < rows; r0 += piece) {
            const int64_t m = std::min(piece, rows - r0);
            const scalar_t* a_rows = a + r0 * lda;
            into_c(m, width, add_c, c + r0 * ldc + sl * H + j0, ldc, [&](float* sums, int64_t ld) {
              at::native::cpublas::brgemm(m, width, k, m == 1 ? k : lda, w.block,
                                          m == 1 ? width : ld, add_c, a_rows, panel, sums,
                                          /*is_vnni=*/true);
            });
          }
        }
        pointwise_block(f, 0, f_rows, j0, j0 + width);
      }
      at::native::cpublas::brgemm_release();  // the matrix units' state, for the next user
    });
  }

  static constexpr int64_t kMinWorkPerThread = 1 << 19;  // flops worth waking a thread for
  // From this many rows a float GEMM goes to BLAS: it packs its operands,
  // and at such sizes beats our brgemm tiles, whose B rows lie 4 KB apart
  // (see benchmarks/README.md).
  static constexpr int64_t kBlasRows = 512;

  // Whether step weights are packed into panels: float GEMMs on brgemm.
  template <typename scalar_t>
  static bool packs() {
    return std::is_same_v<scalar_t, float> && brgemm_ok();
  }

  // W[k, slices * H] as [blocks, slices, k, block] in scratch `slot`: panel
  // (b, s) holds columns s * H + [b * block, (b + 1) * block) of W, zero
  // beyond H. src: W row-major, or (transposed) W^T row-major, as the
  // forward's W_hh^T: then its panels are transposed out of W_hh's rows.
  template <typename T>
  static T* pack_panels(Scratch slot, const T* src, bool transposed, int64_t k, int64_t H,
                        int64_t slices, int64_t block) {
    const int64_t n = slices * H, blocks = (H + block - 1) / block;
    T* dst = cpu::scratch<T>(slot, blocks * slices * k * block);
    if (blocks * block != H) {
      std::fill(dst + (blocks - 1) * slices * k * block, dst + blocks * slices * k * block, T(0));
    }
    cpu::parallel_for(0, blocks * slices, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t col = (p % slices) * H + (p / slices) * block;  // first column of W
        const int64_t width = std::min(block, H - (p / slices) * block);
        T* panel = dst + p * k * block;
        if (transposed) {  // W[kk, col + j] = src[(col + j) * k + kk]
          cpu::transpose(src + col * k, k, panel, block, width, k);
        } else {
          for (int64_t kk = 0; kk < k; ++kk) {
            std::copy(src + kk * n + col, src + kk * n + col + width, panel + kk * block);
          }
        }
      }
    });
    return dst;
  }

  // brgemm's own fallback without AVX2 or with mkldnn disabled is a slow
  // reference loop, so it is only used where its micro-kernel runs.
  static bool brgemm_ok() {
    static const bool ok = cpu::isa() >= cpu::Isa::kAvx2 && at::globalContext().userEnabledMkldnn();
    return ok;
  }

  // C[m, n] (+)= A[k, m]^T B[k, n], A given as A^T (row stride lda): the
  // weight gradients, whose reduction runs over a chunk's rows. On brgemm,
  // not MKL, so that the sums are the same whether the call splits or not
  // (MKL's depend on its thread count; threads.h): A^T is copied once into
  // rows [m, k], then tiles of C as tiled_brgemm's, each summing the
  // reduction in blocks of cpu::kReductionBlock added to C (MKL's float32
  // error; one long sum's grew past the project's rule, gemm_calls.h).
  static void transposed_a_brgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                                  const float* b, int64_t ldb, bool add_c, float* c, int64_t ldc) {
    float* a_rows = cpu::scratch<float>(Scratch::kTransposedA, m * k);  // [m, k]
    constexpr int64_t kColumns = 64;  // of A^T per block of the copy
    cpu::parallel_for(0, (m + kColumns - 1) / kColumns, 4, [&](int64_t begin, int64_t end) {
      const int64_t i0 = begin * kColumns, i1 = std::min(end * kColumns, m);
      cpu::transpose(a + i0, lda, a_rows + i0 * k, k, k, i1 - i0);
    });
    tiled_brgemm(m, n, k, a_rows, k, b, ldb, add_c, c, ldc, cpu::kReductionBlock);
  }

  // C[m, n] (+)= A[m, k] B[k, n], row-major, in tiles of at most kRows x kCols,
  // spread across threads when there is enough work to pay for waking them;
  // each tile's reduction in blocks of k_block added to C (default: one).
  static void tiled_brgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                           const float* b, int64_t ldb, bool add_c, float* c, int64_t ldc,
                           int64_t k_block = 0) {
    if (k_block <= 0 || k_block > k) k_block = std::max<int64_t>(k, 1);
    // Tiles small enough that every thread gets work at batch 64 and G*H = 256,
    // large enough that each brgemm call amortises its dispatch.
    constexpr int64_t kRows = 64, kCols = 64;  // kCols: a multiple of 16 floats
    const int64_t row_tiles = (m + kRows - 1) / kRows;
    const int64_t col_tiles = (n + kCols - 1) / kCols;
    const int64_t tile_flops = 2 * std::min(m, kRows) * std::min(n, kCols) * k;
    const int64_t grain =
        std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(tile_flops, 1));
    cpu::parallel_for(0, row_tiles * col_tiles, grain, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t i = (t / col_tiles) * kRows, j = (t % col_tiles) * kCols;
        for (int64_t k0 = 0; k0 < std::max<int64_t>(k, 1); k0 += k_block) {
          cpu::brgemm(std::min(kRows, m - i), std::min(kCols, n - j), std::min(k_block, k - k0),
                      lda, ldb, ldc, add_c || k0 > 0, a + i * lda + k0, b + k0 * ldb + j,
                      c + i * ldc + j);
        }
      }
    });
  }

  // f(b, j) for b in [b0, b1), j in [j0, j1) with the best instruction set.
  template <class F>
  static void pointwise_block(const F& f, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    switch (cpu::isa()) {
      case cpu::Isa::kAvx512: return pointwise_avx512(f, b0, b1, j0, j1);
      case cpu::Isa::kAvx2: return pointwise_avx2(f, b0, b1, j0, j1);
      default: return pointwise_default(f, b0, b1, j0, j1);
    }
  }

  // The loop over j of each row is the one to vectorise.
#define FASTRNN_POINTWISE_LOOP(NAME, TARGET)                                            \
  template <class F>                                                                    \
  TARGET static void NAME(const F& f, int64_t b0, int64_t b1, int64_t j0, int64_t j1) { \
    for (int64_t b = b0; b < b1; ++b) {                                                 \
      _Pragma("GCC ivdep") for (int64_t j = j0; j < j1; ++j) { f(b, j); }               \
    }                                                                                   \
  }

#if defined(__x86_64__) && defined(__GNUC__)
  FASTRNN_POINTWISE_LOOP(pointwise_avx512,
                         __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))))
  FASTRNN_POINTWISE_LOOP(pointwise_avx2, __attribute__((target("avx2,fma"))))
#else
  FASTRNN_POINTWISE_LOOP(pointwise_avx512, )
  FASTRNN_POINTWISE_LOOP(pointwise_avx2, )
#endif
  FASTRNN_POINTWISE_LOOP(pointwise_default, )
#undef FASTRNN_POINTWISE_LOOP
};

static_assert(BackendFor<CPUBackend, float> && BackendFor<CPUBackend, double>);
static_assert(BackendFor<CPUBackend, c10::BFloat16> && BackendFor<CPUBackend, c10::Half>);

}  // namespace fastrnn
