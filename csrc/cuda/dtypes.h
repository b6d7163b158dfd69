#pragma once
// Whether the CUDA backend takes float16 and bfloat16 (CUDABackend::kHalfTypes,
// backend.h): apart from backend.h, so that csrc/python_module.cpp, which the
// host compiler compiles in every build, reads it without the device code.

namespace fastrnn::cuda {

inline constexpr bool kHalfTypes = true;

}  // namespace fastrnn::cuda
