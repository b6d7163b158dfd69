// The emulated device's checks and counters (api.h), and what the tests read
// of them through the shared library's C symbols (tests/test_cuda_emulated.py):
//   fastrnn_emulated_launches()  kernel launches so far
//   fastrnn_emulated_gemms()     GEMM calls so far
//   fastrnn_emulated_reversed()  1 when blocks run from the last

#include "api.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace fastrnn::emulated {

namespace {

std::atomic<int64_t> launches{0};
std::atomic<int64_t> gemms{0};

// The bytes [first, last) that a column-major matrix of `rows` x `cols`
// elements with column stride ld spans.
struct Span {
  const char* first;
  const char* last;
};

Span span(const void* p, int64_t rows, int64_t cols, int64_t ld, int64_t element_size) {
  const char* first = static_cast<const char*>(p);
  return {first, first + ((cols - 1) * ld + rows) * element_size};
}

bool overlap(Span x, Span y) { return x.first < y.last && y.first < x.last; }

}  // namespace

bool reversed_order() {
  static const bool reversed = [] {
    const char* order = std::getenv("FASTRNN_EMULATED_ORDER");
    const bool rev = order != nullptr && std::strcmp(order, "reversed") == 0;
    TORCH_CHECK(order == nullptr || rev || std::strcmp(order, "forward") == 0,
                "FASTRNN_EMULATED_ORDER: expected forward or reversed, got ", order);
    return rev;
  }();
  return reversed;
}

void check_launch(dim3 grid, dim3 block) {
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u &&
                  grid.y <= 65535 && grid.z <= 65535,
              "emulated CUDA launch: invalid grid (", grid.x, ", ", grid.y, ", ", grid.z, ")");
  TORCH_CHECK(block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 && block.y <= 1024 &&
                  block.z <= 64 && int64_t(block.x) * block.y * block.z <= 1024,
              "emulated CUDA launch: invalid block (", block.x, ", ", block.y, ", ", block.z, ")");
  ++launches;
}

void check_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a,
                int64_t lda, const void* b, int64_t ldb, const void* c, int64_t ldc,
                int64_t element_size, int64_t c_element_size) {
  TORCH_CHECK(m > 0 && n > 0 && k > 0, "emulated cuBLAS GEMM: expected m, n, k > 0, got ", m, ", ",
              n, ", ", k);
  // op(A) is m x k: A itself is k x m when transposed; likewise B (k x n).
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  TORCH_CHECK(lda >= a_rows && ldb >= b_rows && ldc >= m,
              "emulated cuBLAS GEMM: a leading dimension below its matrix's rows: lda ", lda,
              " (rows ", a_rows, "), ldb ", ldb, " (rows ", b_rows, "), ldc ", ldc, " (rows ", m,
              ")");
  const Span c_span = span(c, m, n, ldc, c_element_size);
  TORCH_CHECK(!overlap(c_span, span(a, a_rows, a_cols, lda, element_size)) &&
                  !overlap(c_span, span(b, b_rows, b_cols, ldb, element_size)),
              "emulated cuBLAS GEMM: C overlaps A or B");
  ++gemms;
}

}  // namespace fastrnn::emulated

extern "C" {
__attribute__((visibility("default"))) int64_t fastrnn_emulated_launches() {
  return fastrnn::emulated::launches.load();
}
__attribute__((visibility("default"))) int64_t fastrnn_emulated_gemms() {
  return fastrnn::emulated::gemms.load();
}
__attribute__((visibility("default"))) int fastrnn_emulated_reversed() {
  return fastrnn::emulated::reversed_order() ? 1 : 0;
}
}
