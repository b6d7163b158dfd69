#pragma once
// Which vector instruction set the CPU's pointwise loops are compiled for, chosen
// once at run time: the best the processor has, or FASTRNN_CPU_ISA
// (default | avx2 | avx512) to force a lower one, which is how the tests run
// every variant on one machine.
//
// native_half: whether the CPU multiplies float16 or bfloat16 matrices on
// units of its own with float sums (bfloat16: AVX512-BF16 or AMX-BF16;
// float16: AVX512-FP16, which every CPU with AMX-FP16 has), where MKL's GEMMs for them run near
// their rate; only with the AVX-512 loops chosen, so FASTRNN_CPU_ISA=avx2
// also runs the float path that CPUs without those units take.

#include <c10/core/ScalarType.h>

namespace fastrnn::cpu {

enum class Isa { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

Isa isa();
const char* isa_name(Isa isa);
bool native_half(at::ScalarType type);

}  // namespace fastrnn::cpu
