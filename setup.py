"""Build fastrnn's C++ extension against the torch that is already installed.

Always build with --no-build-isolation (`pip install --no-build-isolation .`):
an isolated build environment would install a second torch, and an extension
built against it breaks the ABI of the torch you run.

Switches (environment variables), printed when the build starts:
  FASTRNN_CUDA=0|1   build the CUDA backend (default 0: the CUDA backend is not written yet)
  MAX_JOBS=N         parallel compile jobs (ninja)
  FASTRNN_DEBUG=1    -O0 -g instead of -O3
"""

import os
import re
import sys

from setuptools import find_packages, setup

try:
    import torch  # noqa: F401
    from torch.utils.cpp_extension import BuildExtension, CppExtension
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


DEBUG = os.environ.get("FASTRNN_DEBUG", "0") == "1"
WITH_CUDA = os.environ.get("FASTRNN_CUDA", "0") == "1"

if WITH_CUDA:
    sys.exit("fastrnn: FASTRNN_CUDA=1 asked for the CUDA backend, which is not written yet.")

print(
    f"fastrnn build: torch {torch.__version__}, FASTRNN_CUDA={int(WITH_CUDA)}, "
    f"FASTRNN_DEBUG={int(DEBUG)}, MAX_JOBS={os.environ.get('MAX_JOBS', 'auto')}",
    file=sys.stderr,
)

# csrc/sources.txt: the library's sources, which CMakeLists.txt builds too;
# python_module.cpp makes them the Python extension.
with open(os.path.join(ROOT, "csrc", "sources.txt")) as f:
    sources = [line.strip() for line in f if line.strip() and not line.startswith("#")]
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
    ext_modules=[
        CppExtension(
            "fastrnn._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
