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


def nvidia_dirs():
    """The folders of the `nvidia` namespace package (torch's CUDA wheels)."""
    try:
        import nvidia
    except ImportError:
        return []
    return list(nvidia.__path__)


def decide_cuda():
    """(build CUDA?, why, nvcc); exits with what is missing if FASTRNN_CUDA=1
    cannot be built."""
    requested = os.environ.get("FASTRNN_CUDA")
    nvcc, where, release = None, "not looked for", None
    if requested != "0":
        nvcc, where = cuda_build.find_nvcc(
            os.environ, shutil.which, nvidia_dirs(), torch.version.cuda
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

if WITH_CUDA:
    # torch.utils.cpp_extension reads CUDA_HOME once, when it is imported, and
    # would otherwise guess it from nvcc's folder: wrong for a wrapper script.
    try:
        TOOLKIT = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
        TOOLKIT = TOOLKIT or cuda_build.toolkit_of(NVCC)
        os.environ["CUDA_HOME"] = TOOLKIT
        # Without a GPU torch cannot pick the architectures itself.
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", cuda_build.DEFAULT_ARCH_LIST)
        LIBRARY_HEADERS = cuda_build.library_headers_dir(TOOLKIT, nvidia_dirs(), torch.version.cuda)
        CUDART = cuda_build.cudart_file(TOOLKIT)
    except cuda_build.CudaBuildError as e:
        sys.exit(f"fastrnn: {e}")
    print(
        f"fastrnn build: CUDA_HOME={TOOLKIT}, "
        f"TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}, cuBLAS headers from "
        f"{LIBRARY_HEADERS or TOOLKIT + '/include'}",
        file=sys.stderr,
    )

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
