#pragma once
// The CUDA language as the host compiler sees it in the emulated-device build:
// the execution-space keywords become plain C++, and the built-in index
// variables are per-thread variables that the launch loop (api.h) sets before
// it calls the kernel body for each (block, thread) of the grid. Only what the
// CUDA backend's kernels use: one-element-per-thread kernels, with no shared
// memory, barriers or warp intrinsics.
//
// Included before any other header that reads these names; C10_HOST_DEVICE
// stays empty (c10 defines it from __CUDACC__, which is not defined here).

#if defined(__CUDACC__)
#error \
    "cuda_shim.h is for the host compiler: nvcc compiles the real CUDA API (csrc/cuda/api_cuda.cuh)"
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};

// thread_local: two host threads may launch kernels at the same time (as two
// Python threads may call the ops).
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
