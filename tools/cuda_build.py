"""How setup.py decides whether to build the CUDA backend, and where it finds
the CUDA toolkit. Plain functions over strings and paths, so that
tests/test_cuda_build.py checks them without nvcc; setup.py loads this file
by path (it is not part of the fastrnn package).

The decision never asks torch.cuda.is_available(): a machine without a GPU
builds the CUDA backend as well as one with.
"""

import os
import re
import subprocess
import tempfile

# torch 2.14.1's CUDA 13 wheels ship sm_75 to sm_120; nvcc 13 has no compute_70.
# The PTX of the newest architecture lets later GPUs compile it at load.
DEFAULT_ARCH_LIST = "7.5;8.0;8.6;9.0;10.0;12.0+PTX"

# What ATen/cuda/CUDAContext.h includes beyond the runtime. A toolkit that is
# only nvcc and the runtime lacks them; torch's nvidia wheels have them.
LIBRARY_HEADERS = ("cublas_v2.h", "cusparse.h")

# The pip packages that make a toolkit nvcc can build with, at torch's CUDA
# version; see README.md, "Build with CUDA".
PIP_TOOLKIT = "cuda-toolkit[nvcc,cudart,cccl]=={major}.{minor}.*"


# Warnings as errors for our CUDA code, on host and device; torch's headers
# pass them.
NVCC_WARNINGS = [
    "-Werror=all-warnings",
    # A host-only function called from host-device code is otherwise only
    # warning 20011-D, and fails on the device at run time.
    "--Werror=cross-execution-space-call",
    "-Xcudafe=--display_error_number",
    "-Xcompiler=-Wall",
    "-Xcompiler=-Werror",
]


class CudaBuildError(Exception):
    """FASTRNN_CUDA asks for something this environment cannot build."""


def pip_toolkit(torch_cuda):
    major, minor = torch_cuda.split(".")[:2]
    return PIP_TOOLKIT.format(major=major, minor=minor)


def nvidia_package_dirs():
    """The folders of the `nvidia` namespace package: torch's CUDA wheels, and
    the CUDA toolkit's pip packages where they are installed."""
    try:
        import nvidia
    except ImportError:
        return []
    return list(nvidia.__path__)


def find_nvcc(environ, which, nvidia_dirs, torch_cuda):
    """The nvcc to build with and where it was found, or (None, why none was).

    In order: CUDA_HOME (or CUDA_PATH, which torch also reads), PATH, then the
    nvidia-cuda-nvcc pip package at torch's CUDA major version (nvidia_dirs:
    the `nvidia` namespace package's __path__).
    """
    home = environ.get("CUDA_HOME") or environ.get("CUDA_PATH")
    if home:
        nvcc = os.path.join(home, "bin", "nvcc")
        if os.access(nvcc, os.X_OK):
            return nvcc, f"CUDA_HOME={home}"
        return None, f"CUDA_HOME={home} has no bin/nvcc"
    nvcc = which("nvcc")
    if nvcc:
        return nvcc, "PATH"
    if torch_cuda:
        folder = "cu" + torch_cuda.split(".")[0]
        for root in nvidia_dirs:
            nvcc = os.path.join(root, folder, "bin", "nvcc")
            if os.access(nvcc, os.X_OK):
                return nvcc, "the nvidia-cuda-nvcc pip package"
    return None, "no nvcc on PATH, CUDA_HOME unset, no nvidia-cuda-nvcc pip package"


def parse_nvcc_release(version_output):
    """(major, minor) from `nvcc --version`, or None."""
    found = re.search(r"release (\d+)\.(\d+)", version_output)
    return (int(found.group(1)), int(found.group(2))) if found else None


def parse_dryrun_top(dryrun_output):
    """The toolkit folder named by the `#$ TOP=` line of `nvcc --dryrun`, or None.

    nvcc on PATH may be a wrapper script or a link; what it runs is named
    here, and torch's guess of the toolkit from nvcc's folder would be wrong.
    """
    found = re.search(r"^#\$ TOP=(.*)$", dryrun_output, re.MULTILINE)
    return os.path.normpath(found.group(1).strip()) if found else None


def run_nvcc(nvcc, *args):
    """nvcc's stdout and stderr together (`--dryrun` prints to stderr), run in
    an empty folder so that nothing it might write lands in the checkout."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [nvcc, *args], cwd=folder, capture_output=True, text=True, timeout=120
        )
    return done.stdout + done.stderr


def toolkit_of(nvcc):
    """The real toolkit folder behind nvcc (CUDA_HOME for torch's cpp_extension).
    A dry run needs no source file: it only prints the commands it would run."""
    top = parse_dryrun_top(run_nvcc(nvcc, "--dryrun", "-c", "probe.cu"))
    if top is None:
        raise CudaBuildError(
            f"{nvcc} --dryrun printed no '#$ TOP=' line; set CUDA_HOME to the CUDA toolkit"
        )
    return os.path.realpath(top)


def decide(requested, nvcc, nvcc_release, torch_cuda, nvcc_where):
    """(build CUDA?, why), from FASTRNN_CUDA (None when unset), the nvcc found
    (None if none, nvcc_where then says why), its (major, minor) release and
    torch.version.cuda (None for a CPU torch).

    Unset means CUDA when nvcc is found, its major version is torch's, and
    torch is a CUDA build. FASTRNN_CUDA=1 where that is not so raises
    CudaBuildError naming what is missing.
    """
    if requested not in (None, "", "0", "1"):
        raise CudaBuildError(f"FASTRNN_CUDA={requested}: expected 0 or 1 (or unset)")
    if requested == "0":
        return False, "FASTRNN_CUDA=0"
    missing = []
    if torch_cuda is None:
        missing.append(
            "a CUDA build of torch (this torch is a CPU build: torch.version.cuda is None)"
        )
    if nvcc is None:
        missing.append(f"nvcc ({nvcc_where})")
    elif torch_cuda is not None and nvcc_release is not None:
        if nvcc_release[0] != int(torch_cuda.split(".")[0]):
            missing.append(
                f"an nvcc of CUDA {torch_cuda.split('.')[0]} to match torch's CUDA "
                f"{torch_cuda} ({nvcc} is release {nvcc_release[0]}.{nvcc_release[1]})"
            )
    if requested == "1":
        if missing:
            hint = "" if torch_cuda is None else f"; pip install '{pip_toolkit(torch_cuda)}'"
            raise CudaBuildError(
                "FASTRNN_CUDA=1, but the CUDA backend cannot be built here: missing "
                + "; ".join(missing)
                + hint
            )
        return True, f"FASTRNN_CUDA=1, nvcc from {nvcc_where}"
    if missing:
        return False, "FASTRNN_CUDA unset: the CPU backend alone, missing " + "; ".join(missing)
    return True, f"FASTRNN_CUDA unset, torch is built for CUDA {torch_cuda}, nvcc from {nvcc_where}"


def library_headers_dir(toolkit, nvidia_dirs, torch_cuda):
    """None if the toolkit has the cuBLAS/cuSPARSE headers, else the nvidia
    pip packages' include folder that has them (nvidia/cu13/include for CUDA
    13, nvidia/cublas/include before)."""
    if all(os.path.exists(os.path.join(toolkit, "include", h)) for h in LIBRARY_HEADERS):
        return None
    major = torch_cuda.split(".")[0]
    for root in nvidia_dirs:
        for folder in (f"cu{major}/include", "cublas/include"):
            include = os.path.join(root, folder)
            if all(os.path.exists(os.path.join(include, h)) for h in LIBRARY_HEADERS):
                return include
    raise CudaBuildError(
        f"no {' or '.join(LIBRARY_HEADERS)} in {toolkit}/include nor in the nvidia pip "
        f"packages ({', '.join(nvidia_dirs) or 'none installed'}); "
        "install nvidia-cublas and nvidia-cusparse (torch's CUDA wheels depend on them)"
    )


def cudart_file(toolkit):
    """None if the toolkit can link `-lcudart`, else the file name of its
    versioned runtime (`libcudart.so.13`) to link as `-l:libcudart.so.13`:
    the pip runtime ships no unversioned libcudart.so."""
    for lib in ("lib64", "lib"):
        if os.path.exists(os.path.join(toolkit, lib, "libcudart.so")):
            return None
    for lib in ("lib64", "lib"):
        folder = os.path.join(toolkit, lib)
        if os.path.isdir(folder):
            versioned = sorted(f for f in os.listdir(folder) if re.match(r"libcudart\.so\.\d+$", f))
            if versioned:
                return versioned[-1]
    raise CudaBuildError(f"no libcudart.so in {toolkit}/lib64 or {toolkit}/lib")


def read_source_list(path):
    """The paths of a source list (csrc/sources.txt, csrc/cuda/sources.txt):
    one a line from the repository root; blank lines and lines starting with #
    skipped, as CMakeLists.txt reads them."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]
