#include "isa.h"

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
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  static const bool bf16 = isa() == Isa::kAvx512 && (__builtin_cpu_supports("avx512bf16") ||
                                                     __builtin_cpu_supports("amx-bf16"));
  // (every CPU with AMX-FP16 has AVX512-FP16)
  static const bool fp16 = isa() == Isa::kAvx512 && __builtin_cpu_supports("avx512fp16");
  if (type == at::kBFloat16) return bf16 && half_gemm_available<c10::BFloat16>();
  if (type == at::kHalf) return fp16 && half_gemm_available<c10::Half>();
#endif
  (void)type;
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    default: return "default";
  }
}

}  // namespace fastrnn::cpu
