#pragma once
// Which vector instruction set the CPU's pointwise loops are compiled for, chosen
// once at run time: the best the processor has, or FASTRNN_CPU_ISA
// (default | avx2 | avx512) to force a lower one, which is how the tests run
// every variant on one machine.

namespace fastrnn::cpu {

enum class Isa { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

Isa isa();
const char* isa_name(Isa isa);

}  // namespace fastrnn::cpu
