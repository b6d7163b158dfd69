#pragma once
// What each cell's .cu file needs to register its ops on the CUDA backend
// (one file per cell, so that they compile in parallel).

#include <torch/library.h>

#include "../ops_impl.h"
#include "api.h"
#include "backend.h"

namespace fastrnn::cuda {

using Ops = RNNOps<CUDABackend>;

}  // namespace fastrnn::cuda
