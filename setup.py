"""Build fastrnn's C++ extension against the torch that is already installed.

Always build with --no-build-isolation (`pip install --no-build-isolation .`):
an isolated build environment would install a second torch, and an extension
built against it breaks the ABI of the torch you run.

Switches (environment variables), printed when the build starts:
  FASTRNN_CUDA=0|1   the CPU backend alone, or the CUDA backend too. Unset: CUDA
                     when nvcc is found and torch is a CUDA build (a GPU is not
                     needed to build it, nor looked for)
  CUDA_HOME=DIR      the CUDA toolkit (default: the one behind nvcc)
  TORCH_CUDA_ARCH_LIST="7.5;8.0+PTX"  the GPU architectures compiled for
                     (default tools/cuda_build.py's DEFAULT_ARCH_LIST)
  MAX_JOBS=N         parallel compile jobs (ninja)
  FASTRNN_DEBUG=1    -O0 -g instead of -O3
"""

import importlib.util
import os
import re
import shutil
import sys

from setuptools import find_packages, setup

try:
    import torch
except ImportError:
    sys.exit(
        "fastrnn: torch is not installed in this environment, or the build runs in an "
        "isolated environment without it.\n"
        "Install torch first (pip install torch==2.13.0), then build with\n"
        "    pip install --no-build-isolation .\n"
        "(an isolated build would compile against a different torch and break at import)."
    )

ROOT = os.path.dirname(os.path.abspath(__file__))


def read_version():
    """fastrnn/version.py's __version__, read without importing fastrnn (whose
    extension is what this builds)."""
    with open(os.path.join(ROOT, "fastrnn", "version.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"$', f.read(), re.MULTILINE).group(1)


def load_cuda_build():
    """tools/cuda_build.py, loaded by path: the build runs from the checkout,
    where `tools` need not be importable."""
    path = os.path.join(ROOT, "tools", "cuda_build.py")
    spec = importlib.util.spec_from_file_location("fastrnn_cuda_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decide_cuda():
    """(build CUDA?, why, nvcc); exits with what is missing if FASTRNN_CUDA=1
    cannot be built."""
    requested = os.environ.get("FASTRNN_CUDA")
    nvcc, where, release = None, "not looked for", None
    if requested != "0":
        nvcc, where = cuda_build.find_nvcc(
            os.environ, shutil.which, cuda_build.nvidia_package_dirs(), torch.version.cuda
        )
        if nvcc:
            release = cuda_build.parse_nvcc_release(cuda_build.run_nvcc(nvcc, "--version"))
    try:
        with_cuda, why = cuda_build.decide(requested, nvcc, release, torch.version.cuda, where)
    except cuda_build.CudaBuildError as e:
        sys.exit(f"fastrnn: {e}")
    return with_cuda, why, nvcc


DEBUG = os.environ.get("FASTRNN_DEBUG", "0") == "1"
cuda_build = load_cuda_build()
WITH_CUDA, WHY, NVCC = decide_cuda()

print(
    f"fastrnn build: torch {torch.__version__}, FASTRNN_CUDA={int(WITH_CUDA)} ({WHY}), "
    f"FASTRNN_DEBUG={int(DEBUG)}, MAX_JOBS={os.environ.get('MAX_JOBS', 'auto')}",
    file=sys.stderr,
)


def prepare_cuda():
    """(toolkit, folder of cuBLAS's headers if not the toolkit's, versioned
    cudart to link if no libcudart.so); sets CUDA_HOME and TORCH_CUDA_ARCH_LIST
    for torch.utils.cpp_extension, which reads CUDA_HOME once, when imported,
    and would otherwise guess it from nvcc's folder (wrong for a wrapper)."""
    try:
        toolkit = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
        toolkit = toolkit or cuda_build.toolkit_of(NVCC)
        headers = cuda_build.library_headers_dir(
            toolkit, cuda_build.nvidia_package_dirs(), torch.version.cuda
        )
        cudart = cuda_build.cudart_file(toolkit)
    except cuda_build.CudaBuildError as e:
        sys.exit(f"fastrnn: {e}")
    os.environ["CUDA_HOME"] = toolkit
    # Without a GPU torch cannot pick the architectures itself.
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", cuda_build.DEFAULT_ARCH_LIST)
    print(
        f"fastrnn build: CUDA_HOME={toolkit}, "
        f"TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}, "
        f"cuBLAS headers from {headers or toolkit + '/include'}",
        file=sys.stderr,
    )
    return toolkit, headers, cudart


if WITH_CUDA:
    TOOLKIT, LIBRARY_HEADERS, CUDART = prepare_cuda()

from torch.utils import cpp_extension  # noqa: E402  (after CUDA_HOME is set)

if WITH_CUDA and cpp_extension.CUDA_HOME != TOOLKIT:
    sys.exit(
        f"fastrnn: torch.utils.cpp_extension was imported before setup.py set CUDA_HOME "
        f"and uses {cpp_extension.CUDA_HOME}; run setup.py in a fresh process, or set "
        f"CUDA_HOME={TOOLKIT}"
    )

# csrc/sources.txt: the library's sources, which CMakeLists.txt builds too;
# python_module.cpp makes them the Python extension.
sources = cuda_build.read_source_list(os.path.join(ROOT, "csrc", "sources.txt"))
sources = sorted(sources + [os.path.join("csrc", "python_module.cpp")])
cxx_flags = ["-O0", "-g"] if DEBUG else ["-O3"]
# As torch itself is built: no errno and no trapping from float math, which
# lets the pointwise loops' selects be if-converted and vectorised. Neither
# flag changes a result.
cxx_flags += ["-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unused-parameter"]
# at::parallel_for is an inline template whose threads come from the OpenMP
# pragmas compiled into *our* code: without -fopenmp it silently runs on one
# thread. The OpenMP runtime (libgomp.so.1) is the one torch ships and loads.
cxx_flags += ["-fopenmp"]
link_flags = ["-fopenmp"]


def cuda_extension():
    """The CPU sources and the CUDA backend's (csrc/cuda/sources.txt) in one
    extension, our code compiled with warnings as errors on host and device."""
    listed = os.path.join(ROOT, "csrc", "cuda", "sources.txt")
    if not os.path.exists(listed):
        sys.exit("fastrnn: the CUDA build needs csrc/cuda/sources.txt, which is missing")
    cuda_sources = cuda_build.read_source_list(listed)
    # -Wextra with cxx_flags' -Wno-unused-parameter, which torch's headers need
    werror = ["-Wextra", "-Werror"]
    nvcc_flags = ["-O0", "-g", "-lineinfo"] if DEBUG else ["-O3"]
    nvcc_flags += cuda_build.NVCC_WARNINGS
    extension = cpp_extension.CUDAExtension(
        "fastrnn._C",
        sorted(sources + cuda_sources),
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": cxx_flags + werror, "nvcc": nvcc_flags},
        extra_link_args=link_flags,
    )
    if LIBRARY_HEADERS:
        # after the toolkit's own include folder, whose runtime headers win
        extension.include_dirs.append(LIBRARY_HEADERS)
    if CUDART:
        extension.libraries.remove("cudart")
        extension.extra_link_args.append(f"-l:{CUDART}")
    return extension


def cpu_extension():
    return cpp_extension.CppExtension(
        "fastrnn._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=link_flags,
    )


setup(
    name="fastrnn",
    version=read_version(),
    description="Fused CPU kernels for RNN, LSTM and GRU: drop-in replacements for torch.nn",
    # the library only: experiments/, benchmarks/ and tests/ stay in the checkout
    packages=find_packages(include=["fastrnn", "fastrnn.*"]),
    license="BSD-3-Clause",
    python_requires=">=3.9",
    # the library needs torch alone; the experiments, the benchmark and the
    # tests (run from a checkout) list their own in requirements files
    install_requires=["torch"],
    ext_modules=[cuda_extension() if WITH_CUDA else cpu_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
