#include "isa.h"

#include <ATen/native/CPUBlas.h>

#include "gemm_calls.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace fastrnn::cpu {

namespace {

Isa detect() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("fma")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kDefault;
}

Isa choose() {
  const Isa best = detect();
  const char* asked = std::getenv("FASTRNN_CPU_ISA");
  if (asked == nullptr || *asked == '\0') return best;
  for (Isa candidate : {Isa::kDefault, Isa::kAvx2, Isa::kAvx512}) {
    if (std::strcmp(asked, isa_name(candidate)) == 0) {
      TORCH_CHECK(candidate <= best, "FASTRNN_CPU_ISA=", asked, ": this CPU supports at most ",
                  isa_name(best));
      return candidate;
    }
  }
  TORCH_CHECK(false, "FASTRNN_CPU_ISA=", asked, ": expected default, avx2 or avx512");
}

}  // namespace

Isa isa() {
  static const Isa chosen = choose();
  return chosen;
}

bool native_half(at::ScalarType type) {
  static const char* asked = [] {
    const char* value = std::getenv("FASTRNN_CPU_HALF");
    if (value == nullptr || *value == '\0') return "";
    TORCH_CHECK(std::strcmp(value, "native") == 0 || std::strcmp(value, "float32") == 0,
                "FASTRNN_CPU_HALF=", value, ": expected native or float32");
    return value;
  }();
  const bool has_gemm = type == at::kBFloat16 ? half_gemm_available<c10::BFloat16>()
                        : type == at::kHalf   ? half_gemm_available<c10::Half>()
                                              : false;
  if (!has_gemm || std::strcmp(asked, "float32") == 0) return false;
  if (std::strcmp(asked, "native") == 0) return true;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  static const bool bf16 = isa() == Isa::kAvx512 && (__builtin_cpu_supports("avx512bf16") ||
                                                     __builtin_cpu_supports("amx-bf16"));
  // float16 products summed in float need AMX-FP16, which oneDNN packs for
  // (AVX512-FP16 sums in float16: MKL converts to float there, and the float
  // kernels are faster; benchmarks/README.md)
  static const bool fp16 = isa() == Isa::kAvx512 && at::native::cpublas::could_pack(at::kHalf);
  return type == at::kBFloat16 ? bf16 : fp16;
#else
  return false;
#endif
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    default: return "default";
  }
}

}  // namespace fastrnn::cpu
