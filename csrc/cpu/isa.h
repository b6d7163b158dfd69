#pragma once
// Which vector instruction set the CPU's pointwise loops are compiled for, chosen
// once at run time: the best the processor has, or FASTRNN_CPU_ISA
// (default | avx2 | avx512) to force a lower one, which is how the tests run
// every variant on one machine.
//
// native_half: whether the CPU kernels take float16 or bfloat16 themselves:
// where the CPU multiplies them with float sums on units of its own
// (bfloat16: AVX512-BF16 or AMX-BF16; float16: AMX-FP16), with the AVX-512
// loops chosen (so FASTRNN_CPU_ISA=avx2 also runs the float path that CPUs
// without those units take). FASTRNN_CPU_HALF=native takes both on any CPU
// (MKL's GEMMs for them run everywhere, converting where the CPU has no
// units), which is how the tests run those kernels on every machine;
// FASTRNN_CPU_HALF=float32 takes neither.

#include <c10/core/ScalarType.h>

namespace fastrnn::cpu {

enum class Isa { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

Isa isa();
const char* isa_name(Isa isa);
bool native_half(at::ScalarType type);

}  // namespace fastrnn::cpu
