"""The CUDA build: that it registers a CUDA kernel for every op (where
fastrnn was built with FASTRNN_CUDA=1; no GPU needed), and how setup.py
decides to build it and finds the toolkit (tools/cuda_build.py, on captured
nvcc output and fake toolkit folders, no nvcc needed).

`make test-cuda-build` sets FASTRNN_EXPECT_CUDA=1, which turns the skip of a
build without CUDA into a failure."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastrnn
from tools import cuda_build

ROOT = Path(__file__).resolve().parent.parent
EXPECT_CUDA = os.environ.get("FASTRNN_EXPECT_CUDA") == "1"


def fastrnn_ops():
    return sorted(
        name for name in torch._C._dispatch_get_all_op_names() if name.startswith("fastrnn::")
    )


def has_kernel(name, key):
    return torch._C._dispatch_has_kernel_for_dispatch_key(name, key)


def linked_to_cuda():
    """Whether fastrnn._C links the CUDA runtime, as every object with a kernel
    must (it registers its device code through it): the name of every library
    it needs is in its dynamic string table."""
    return b"libcudart.so" in Path(fastrnn._C.__file__).read_bytes()


def cuda_build_or_skip():
    if torch.version.cuda is None:
        reason = f"torch {torch.__version__} is a CPU build"
    elif not linked_to_cuda():
        reason = f"{fastrnn._C.__file__} was built without CUDA (FASTRNN_CUDA=0)"
    else:
        return
    if EXPECT_CUDA:
        pytest.fail(f"FASTRNN_EXPECT_CUDA=1, but {reason}")
    pytest.skip(reason)


# -- the built extension ---------------------------------------------------


def test_every_op_with_a_cpu_kernel_has_a_cuda_kernel():
    cuda_build_or_skip()
    ops = fastrnn_ops()
    on_cpu = [name for name in ops if has_kernel(name, "CPU")]
    assert on_cpu, f"no fastrnn op has a CPU kernel: {ops}"
    missing = [name for name in on_cpu if not has_kernel(name, "CUDA")]
    assert not missing, f"ops with a CPU kernel but no CUDA kernel: {missing}"


def test_cpu_build_registers_no_cuda_kernel():
    """The other side of the detection above: a CPU build has no CUDA kernel."""
    if linked_to_cuda():
        pytest.skip(f"{fastrnn._C.__file__} is a CUDA build")
    assert not [name for name in fastrnn_ops() if has_kernel(name, "CUDA")]


# -- setup.py's decision, run for real --------------------------------------


def setup_py(env):
    """`setup.py --version`: decides the backend and prints why, compiles nothing."""
    return subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), "--version"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_setup_py_builds_the_cpu_backend_when_told():
    done = setup_py({"FASTRNN_CUDA": "0"})
    assert done.returncode == 0, done.stderr
    assert "FASTRNN_CUDA=0" in done.stderr


@pytest.mark.skipif(torch.version.cuda is not None, reason="torch is a CUDA build")
def test_setup_py_refuses_cuda_on_a_cpu_torch():
    done = setup_py({"FASTRNN_CUDA": "1"})
    assert done.returncode != 0
    assert "a CUDA build of torch" in done.stderr, done.stderr


# -- the CUDA build's warnings ------------------------------------------------

HOST_FUNCTION_FROM_DEVICE = """\
int host_only(int x) { return x + 1; }
__host__ __device__ int both(int x) { return host_only(x); }
__global__ void kernel(int* p) { p[0] = both(p[0]); }
"""
UNUSED_HOST_VARIABLE = "int f() { int unused = 0; return 1; }\n"


@pytest.mark.parametrize(
    "source, error",
    [
        (HOST_FUNCTION_FROM_DEVICE, "calling a __host__ function"),
        (UNUSED_HOST_VARIABLE, '"unused" was declared but never referenced'),
    ],
)
def test_nvcc_warnings_are_errors(tmp_path, source, error):
    nvcc = cuda_build.find_nvcc(
        os.environ, shutil.which, cuda_build.nvidia_package_dirs(), torch.version.cuda
    )[0]
    if nvcc is None:
        pytest.skip("no nvcc")
    (tmp_path / "bad.cu").write_text(source)
    # nvcc without a runtime preloaded into this test's process (the
    # AddressSanitizer run's), which crashes it
    environment = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    done = subprocess.run(
        [nvcc, *cuda_build.NVCC_WARNINGS, "-arch=sm_75", "-c", "bad.cu"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and error in done.stdout + done.stderr, done.stderr


# -- the decision ----------------------------------------------------------

NVCC = "/opt/cuda/bin/nvcc"


def decide(requested, nvcc, release, torch_cuda):
    where = "PATH" if nvcc else "no nvcc on PATH, CUDA_HOME unset"
    return cuda_build.decide(requested, nvcc, release, torch_cuda, where)


def test_fastrnn_cuda_0_builds_cpu_without_looking_at_anything():
    assert cuda_build.decide("0", None, None, "13.0", "") == (False, "FASTRNN_CUDA=0")


def test_unset_builds_cuda_with_nvcc_and_a_cuda_torch():
    built, why = decide(None, NVCC, (13, 0), "13.0")
    assert built and "CUDA 13.0" in why and "PATH" in why


# Three ways to lack something: (nvcc, its release, torch.version.cuda, what
# the decision names as missing)
MISSING = [
    pytest.param(NVCC, (13, 0), None, "a CUDA build of torch", id="cpu-torch"),
    pytest.param(None, None, "13.0", "nvcc (no nvcc on PATH", id="no-nvcc"),
    pytest.param(NVCC, (12, 8), "13.0", "an nvcc of CUDA 13", id="nvcc-12"),
]


@pytest.mark.parametrize("nvcc, release, torch_cuda, missing", MISSING)
def test_unset_builds_cpu_and_says_why(nvcc, release, torch_cuda, missing):
    built, why = decide(None, nvcc, release, torch_cuda)
    assert not built and why.startswith("FASTRNN_CUDA unset") and missing in why


def test_a_newer_nvcc_minor_release_is_fine():
    assert decide("1", NVCC, (13, 5), "13.0")[0]


@pytest.mark.parametrize("nvcc, release, torch_cuda, missing", MISSING)
def test_fastrnn_cuda_1_names_what_is_missing(nvcc, release, torch_cuda, missing):
    with pytest.raises(cuda_build.CudaBuildError, match="FASTRNN_CUDA=1") as error:
        decide("1", nvcc, release, torch_cuda)
    assert missing in str(error.value)
    if torch_cuda:
        assert "cuda-toolkit[nvcc,cudart,cccl]==13.0.*" in str(error.value)


def test_fastrnn_cuda_takes_0_or_1_only():
    with pytest.raises(cuda_build.CudaBuildError, match="expected 0 or 1"):
        decide("yes", NVCC, (13, 0), "13.0")


# -- finding nvcc and the toolkit -------------------------------------------


def executable(path, text="#!/bin/sh\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def no_nvcc_on_path(_name):
    return None


def test_cuda_home_comes_first(tmp_path):
    nvcc = executable(tmp_path / "home" / "bin" / "nvcc")
    found = cuda_build.find_nvcc({"CUDA_HOME": str(tmp_path / "home")}, lambda _: "/x", [], "13.0")
    assert found == (nvcc, f"CUDA_HOME={tmp_path / 'home'}")


def test_cuda_home_without_nvcc_says_so(tmp_path):
    found = cuda_build.find_nvcc({"CUDA_PATH": str(tmp_path)}, lambda _: "/x", [], "13.0")
    assert found == (None, f"CUDA_HOME={tmp_path} has no bin/nvcc")


def test_nvcc_on_path_before_the_pip_package(tmp_path):
    executable(tmp_path / "cu13" / "bin" / "nvcc")
    found = cuda_build.find_nvcc({}, lambda _: "/usr/bin/nvcc", [str(tmp_path)], "13.0")
    assert found == ("/usr/bin/nvcc", "PATH")


def test_the_pip_package_of_torchs_cuda_major(tmp_path):
    executable(tmp_path / "a" / "cu12" / "bin" / "nvcc")
    nvcc = executable(tmp_path / "b" / "cu13" / "bin" / "nvcc")
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    found = cuda_build.find_nvcc({}, no_nvcc_on_path, dirs, "13.0")
    assert found == (nvcc, "the nvidia-cuda-nvcc pip package")
    assert cuda_build.find_nvcc({}, no_nvcc_on_path, dirs[:1], "13.0")[0] is None


# Captured from `nvcc --dryrun -c x.cu`: nvcc 13.0.88 through the wrapper
# script /usr/local/bin/nvcc, then the nvidia-cuda-nvcc pip package's.
DRYRUN_TOOLKIT = """\
#$ _NVVM_BRANCH_=nvvm
#$ _SPACE_=\x20
#$ _CUDART_=cudart
#$ _HERE_=/usr/local/cuda-13.0/bin
#$ _THERE_=/usr/local/cuda-13.0/bin
#$ _TARGET_SIZE_=
#$ _TARGET_DIR_=
#$ _TARGET_DIR_=targets/x86_64-linux
#$ TOP=/usr/local/cuda-13.0/bin/..
#$ CICC_PATH=/usr/local/cuda-13.0/bin/../nvvm/bin
#$ NVVMIR_LIBRARY_DIR=/usr/local/cuda-13.0/bin/../nvvm/libdevice
"""
DRYRUN_PIP = """\
#$ _HERE_=/venv/lib/python3.11/site-packages/nvidia/cu13/bin
#$ TOP=/venv/lib/python3.11/site-packages/nvidia/cu13/bin/..
#$ CICC_PATH=/venv/lib/python3.11/site-packages/nvidia/cu13/bin/../nvvm/bin
"""


def test_parse_dryrun_top():
    assert cuda_build.parse_dryrun_top(DRYRUN_TOOLKIT) == "/usr/local/cuda-13.0"
    assert (
        cuda_build.parse_dryrun_top(DRYRUN_PIP) == "/venv/lib/python3.11/site-packages/nvidia/cu13"
    )
    assert cuda_build.parse_dryrun_top("#$ CICC_PATH=/x\n") is None


def test_parse_nvcc_release():
    text = "Cuda compilation tools, release 13.0, V13.0.88\nBuild cuda_13.0.r13.0/compiler.1_0\n"
    assert cuda_build.parse_nvcc_release(text) == (13, 0)
    assert cuda_build.parse_nvcc_release("command not found") is None


def test_the_toolkit_behind_a_wrapper_script(tmp_path):
    """nvcc on PATH as a script that runs the real one: the toolkit is the one
    its dry run names, not the script's folder."""
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "bin").mkdir(parents=True)
    dryrun = f"#$ _HERE_={toolkit}/bin\n#$ TOP={toolkit}/bin/..\n"
    real = executable(toolkit / "bin" / "nvcc", f"#!/bin/sh\nprintf '{dryrun}' >&2\n")
    wrapper = executable(tmp_path / "local" / "bin" / "nvcc", f'#!/bin/sh\nexec {real} "$@"\n')
    assert cuda_build.toolkit_of(wrapper) == str(toolkit)


def test_a_dry_run_without_top_is_an_error(tmp_path):
    nvcc = executable(tmp_path / "nvcc", "#!/bin/sh\necho unrelated\n")
    with pytest.raises(cuda_build.CudaBuildError, match="set CUDA_HOME"):
        cuda_build.toolkit_of(nvcc)


def touch(*paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def test_library_headers_from_the_toolkit_or_the_nvidia_packages(tmp_path):
    toolkit, site = tmp_path / "cuda", tmp_path / "nvidia"
    touch(toolkit / "include" / "cuda_runtime.h")
    touch(*(site / "cu13" / "include" / h for h in cuda_build.LIBRARY_HEADERS))
    found = cuda_build.library_headers_dir(str(toolkit), [str(site)], "13.0")
    assert found == str(site / "cu13" / "include")
    touch(*(toolkit / "include" / h for h in cuda_build.LIBRARY_HEADERS))
    assert cuda_build.library_headers_dir(str(toolkit), [str(site)], "13.0") is None


def test_no_library_headers_anywhere_is_an_error(tmp_path):
    touch(tmp_path / "nvidia" / "cu13" / "include" / "cublas_v2.h")  # no cusparse.h
    with pytest.raises(cuda_build.CudaBuildError, match="cusparse.h"):
        cuda_build.library_headers_dir(str(tmp_path), [str(tmp_path / "nvidia")], "13.0")


def test_cudart_of_a_toolkit_and_of_the_pip_runtime(tmp_path):
    touch(
        tmp_path / "cuda" / "lib64" / "libcudart.so",
        tmp_path / "cuda" / "lib64" / "libcudart.so.13",
    )
    assert cuda_build.cudart_file(str(tmp_path / "cuda")) is None
    touch(
        tmp_path / "cu13" / "lib" / "libcudart.so.13",
        tmp_path / "cu13" / "lib" / "libcudart_static.a",
    )
    assert cuda_build.cudart_file(str(tmp_path / "cu13")) == "libcudart.so.13"
    with pytest.raises(cuda_build.CudaBuildError, match="no libcudart.so"):
        cuda_build.cudart_file(str(tmp_path / "empty"))


def test_read_source_list(tmp_path):
    listed = tmp_path / "sources.txt"
    listed.write_text("# the kernels\ncsrc/cuda/a.cu\n\n  csrc/cuda/b.cu  \n#csrc/cuda/c.cu\n")
    assert cuda_build.read_source_list(listed) == ["csrc/cuda/a.cu", "csrc/cuda/b.cu"]
