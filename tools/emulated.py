"""The CUDA backend on the emulated device: build it, and run the tests on it.

    python tools/emulated.py build [--asan]
    python tools/emulated.py test [--asan] [--order forward|reversed] [pytest arguments]

`build` compiles the CUDA backend's sources (csrc/cuda/sources.txt) with the
host compiler and the emulation of csrc/emulated/ into a fastrnn package of
its own, build/emulated/fastrnn (build/emulated-asan with AddressSanitizer):
the checkout's Python files, linked, beside an extension _C whose ops run the
CUDA backend for CPU tensors, registered on the CPU's dispatch keys where the
CPU build registers its backend (which this build leaves out). Also the C++
test of the backend's primitives (tests/cpp/test_cuda_emulated.cpp). ninja
rebuilds only what changed.

`test` builds, then runs the whole test suite (tests/) against that package,
in both block orders (FASTRNN_EMULATED_ORDER) unless --order names one;
tests/test_cuda_emulated.py runs the C++ test among them. pytest puts `-o
pythonpath=` first on sys.path, so the emulated package is the one imported;
FASTRNN_EXPECT_EMULATED=1 makes tests/test_cuda_emulated.py fail, not skip,
if it is not.

With --asan, the tests run with the ASan runtime preloaded into Python (which
is not itself instrumented) and leak detection off (the interpreter's and
torch's own allocations live until exit); a report fails the run.
"""

import argparse
import os
import shlex
import subprocess
import sys
import sysconfig

import torch
from torch.utils.cpp_extension import include_paths, library_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDERS = ("forward", "reversed")


def read_list(path):
    with open(os.path.join(ROOT, path)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def sources():
    """The emulated extension's sources: the library's (csrc/sources.txt)
    without the CPU backend, the CUDA backend's, the Python module, and the
    emulation."""
    library = [s for s in read_list("csrc/sources.txt") if not s.startswith("csrc/cpu/")]
    cuda = read_list("csrc/cuda/sources.txt")
    return library + cuda + ["csrc/python_module.cpp", "csrc/emulated/emulated.cpp"]


def build_dir(asan):
    return os.path.join(ROOT, "build", "emulated-asan" if asan else "emulated")


def write_if_changed(path, text):
    """Leaves the file (and its time stamp, which ninja reads) alone when it
    already holds text."""
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
    with open(path, "w") as f:
        f.write(text)


def compile_unit(out, source):
    """The file the host compiler compiles for source: a .cu becomes a .cpp
    that includes it (the compiler picks the language from the name)."""
    if not source.endswith(".cu"):
        return os.path.join(ROOT, source)
    unit = os.path.join(out, "src", os.path.basename(source)[: -len(".cu")] + ".cpp")
    write_if_changed(unit, f'#include "{os.path.join(ROOT, source)}"\n')
    return unit


def ninja_file(out, asan):
    cxx = os.environ.get("CXX", "c++")
    includes = [f"-I{os.path.join(ROOT, 'csrc')}"]
    includes += [f"-isystem {p}" for p in include_paths()]
    includes += [f"-isystem {sysconfig.get_path('include', scheme='posix_prefix')}"]
    # As setup.py's CPU build, with warnings as errors; -Wextra less the
    # missing-field warning, which the Python C API's PyModuleDef initialisers trip.
    cflags = ["-std=c++20", "-fPIC", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    cflags += ["-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Werror"]
    cflags += ["-DFASTRNN_EMULATED", "-DTORCH_API_INCLUDE_EXTENSION_H", "-DTORCH_EXTENSION_NAME=_C"]
    ldflags = ["-fopenmp"]
    if asan:
        cflags += ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"]
        ldflags += ["-fsanitize=address"]
    else:
        cflags += ["-O2"]
    torch_lib = library_paths()[0]
    libs = [f"-L{torch_lib}", "-lc10", "-ltorch_cpu", "-ltorch"]
    lines = [
        f"cflags = {' '.join(includes + cflags)}",
        f"ldflags = {' '.join(ldflags)}",
        "rule cxx",
        f"  command = {cxx} -MMD -MF $out.d $cflags -c $in -o $out",
        "  depfile = $out.d",
        "  deps = gcc",
        "  description = CXX $in",
        "rule link_module",
        f"  command = {cxx} -shared $in -o $out $ldflags {' '.join(libs)} -ltorch_python",
        "rule link_program",
        f"  command = {cxx} $in -o $out $ldflags {' '.join(libs)} -Wl,-rpath,{torch_lib}",
    ]
    objects = {}
    for source in sources() + ["tests/cpp/test_cuda_emulated.cpp"]:
        obj = os.path.join("obj", source.replace("/", "_") + ".o")
        objects[source] = obj
        lines.append(f"build {obj}: cxx {compile_unit(out, source)}")
    module = os.path.join("fastrnn", "_C" + sysconfig.get_config_var("EXT_SUFFIX"))
    lines.append(f"build {module}: link_module {' '.join(objects[s] for s in sources())}")
    test_objects = [
        objects["tests/cpp/test_cuda_emulated.cpp"],
        objects["csrc/emulated/emulated.cpp"],
    ]
    lines.append(f"build test_cuda_emulated: link_program {' '.join(test_objects)}")
    return "\n".join(lines) + "\n"


def link_python_files(out):
    """build/.../fastrnn: a link to each of the checkout's Python files, and
    nothing of its compiled extension."""
    package = os.path.join(out, "fastrnn")
    names = [n for n in os.listdir(os.path.join(ROOT, "fastrnn")) if n.endswith(".py")]
    for name in os.listdir(package):
        if name.endswith(".py") and name not in names:
            os.remove(os.path.join(package, name))
    for name in names:
        link = os.path.join(package, name)
        if not os.path.islink(link):
            os.symlink(os.path.join(ROOT, "fastrnn", name), link)


def build(asan):
    out = build_dir(asan)
    for sub in ("src", "obj", "fastrnn"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    write_if_changed(os.path.join(out, "build.ninja"), ninja_file(out, asan))
    link_python_files(out)
    ninja = os.path.join(os.path.dirname(sys.executable), "ninja")
    jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
    print(f"emulated build in {out} (torch {torch.__version__}, asan {int(asan)})", file=sys.stderr)
    subprocess.run([ninja if os.path.exists(ninja) else "ninja", "-C", out, "-j", jobs], check=True)
    return out


def asan_environment(out):
    """The ASan runtime preloaded, with libstdc++ (which ASan must find at
    start-up to intercept C++ throws, and Python does not link), and its
    reports written to files: pytest's output capture would swallow them."""
    runtimes = [
        subprocess.run(
            [os.environ.get("CXX", "c++"), f"-print-file-name={lib}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for lib in ("libasan.so", "libstdc++.so")
    ]
    return {
        "LD_PRELOAD": " ".join(runtimes),
        "ASAN_OPTIONS": f"detect_leaks=0:log_path={os.path.join(out, 'asan-report')}",
    }


def asan_reports(out):
    return sorted(os.path.join(out, n) for n in os.listdir(out) if n.startswith("asan-report"))


def test(asan, orders, pytest_args):
    out = build(asan)
    env = dict(os.environ, FASTRNN_EXPECT_EMULATED="1", **(asan_environment(out) if asan else {}))
    command = [sys.executable, "-m", "pytest", "-o", f"pythonpath={out}", "-p", "no:cacheprovider"]
    command += ["tests", *pytest_args]
    for report in asan_reports(out):
        os.remove(report)
    failed = []
    for order in orders:
        print(f"FASTRNN_EMULATED_ORDER={order} {shlex.join(command)}", file=sys.stderr)
        result = subprocess.run(command, cwd=ROOT, env=dict(env, FASTRNN_EMULATED_ORDER=order))
        if result.returncode != 0:
            failed.append(order)
    for report in asan_reports(out):
        print(f"AddressSanitizer report {report}:", file=sys.stderr)
        with open(report) as f:
            print(f.read(), file=sys.stderr)
    if failed:
        print(f"emulated tests failed in block order {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or asan_reports(out) else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "test"))
    parser.add_argument("--asan", action="store_true", help="build with AddressSanitizer")
    parser.add_argument("--order", choices=ORDERS, help="run the tests in this block order only")
    args, pytest_args = parser.parse_known_args()
    if args.command == "build":
        build(args.asan)
        return 0
    return test(args.asan, (args.order,) if args.order else ORDERS, pytest_args)


if __name__ == "__main__":
    sys.exit(main())
