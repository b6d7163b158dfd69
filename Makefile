# One place for setup, the main job and the tests. Needs only Python 3 and a
# C++ compiler: every target creates .venv, installs torch and the tools, and
# builds fastrnn into the checkout, each step only when what it depends on
# changed.
#
# make run     the main job: RNN, LSTM and GRU at seq_len 10, 20, 30 on the
#              built-in text, trained on fastrnn and on torch.nn (experiments.compare)
# make shakespeare  Tiny Shakespeare as the course assignment: LSTM and GRU at
#              seq_len 20, 30, 50, on its random split and a positional one
#              (experiments.shakespeare; FASTRNN_DATA names the text; resumes
#              from its checkpoints in shakespeare-out)
# make hyperparams  the assignment's hyperparameter study: Tiny Shakespeare
#              LSTM over layers 1-3, hidden 128-512, with and without a hidden
#              fully connected layer, 60 s of training each
#              (experiments.hyperparams; skips the runs in hyperparams-out)
# make test    the library's tests, the experiments' tests, the lower ISAs,
#              the C++ tests (ctest), the tests on the emulated CUDA device
#              and a smoke run of the benchmark
# make bench   the kernel benchmark against torch.nn (benchmarks.bench)
# make test-cuda-build  the CUDA build (FASTRNN_CUDA=1, no GPU needed) in its
#              own venv (.venv-cuda, a CUDA torch): every op has a CUDA kernel,
#              and the library's tests pass there
# make test-cuda-emulated  the CUDA backend compiled by the host compiler and
#              run on the CPU (csrc/emulated/): the whole test suite on it, in
#              both block orders (part of make test)
# make test-gpu  on a machine with a GPU and a CUDA torch (its python3): the
#              CUDA build for that GPU, the GPU tests and the GPU benchmark grid
# make lint    ruff (lint and format) and clang-format, as CI runs them
# make format  rewrite the sources in the format `make lint` checks
#
# fastrnn is built in place (fastrnn/_C*.so) with `setup.py build_ext`, whose
# ninja build in build/ext recompiles only the sources that changed; a .pth
# file puts the checkout on the venv's path (an editable install would
# rebuild everything in a fresh temporary folder every time). torch must not
# be installed into an isolated build environment (another torch, broken
# ABI), which is why nothing here calls `pip install .`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
ARGS   ?=
DEPS   := $(VENV)/.fastrnn-deps
EXT    := build/.fastrnn-ext
REQUIREMENTS := tests/requirements.txt benchmarks/requirements.txt experiments/requirements.txt
CSRC   := $(shell find csrc -type f)
LINT_TOOLS := ruff==0.17.6 clang-format==23.1.5
CXX_FILES = $$(git ls-files 'csrc/*.h' 'csrc/*.cpp' 'csrc/*.cu' 'csrc/*.cuh' 'tests/cpp/*.cpp')
# The CUDA build's own venv and output folder: build/cuda-lib holds a copy of
# the package with the CUDA fastrnn/_C*.so, and the checkout's CPU one stays.
CUDA_VENV  ?= .venv-cuda
CUDA_PY    := $(CUDA_VENV)/bin/python
CUDA_TORCH ?= torch==2.14.1
# nvcc and the runtime headers at that torch's CUDA version, where the machine
# has no nvcc
CUDA_TOOLKIT ?= cuda-toolkit[nvcc,cudart,cccl]==13.0.*
CUDA_DEPS  := $(CUDA_VENV)/.fastrnn-deps
CUDA_EXT   := build/.fastrnn-cuda-ext
CUDA_LIB   := build/cuda-lib

.PHONY: setup build run shakespeare hyperparams bench test test-py test-isa test-cpp bench-smoke lint format clean \
	build-cuda test-cuda-build test-cuda-emulated test-gpu

setup: build

$(DEPS): $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" ninja pybind11 setuptools wheel cmake $(LINT_TOOLS)
	$(PY) -m pip install -q $(addprefix -r ,$(REQUIREMENTS))
	touch $(DEPS)

$(EXT): $(DEPS) $(CSRC) setup.py
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) setup.py -q build_ext --inplace --force \
	    --build-temp build/ext
	$(PY) -c "import site, sys; open(site.getsitepackages()[0] + '/fastrnn-checkout.pth', 'w').write(sys.argv[1] + '\n')" "$(CURDIR)"
	touch $(EXT)

build: $(EXT)

run: build
	$(PY) -m experiments.compare --backend both $(ARGS)

shakespeare: build
	$(PY) -m experiments.shakespeare $(ARGS)

hyperparams: build
	$(PY) -m experiments.hyperparams $(ARGS)

bench: build
	$(PY) -m benchmarks.bench $(ARGS)

test: test-py test-isa test-cpp test-cuda-emulated bench-smoke

test-py: build
	$(PY) -m pytest tests experiments/tests -q $(ARGS)

# The numerical contract again on the lower instruction sets' pointwise loops
# (and, below AVX2, the BLAS GEMM path), where this CPU has them.
test-isa: build
	for isa in default avx2; do \
	  if FASTRNN_CPU_ISA=$$isa $(PY) -c "import torch, fastrnn; fastrnn.LSTM(1, 1)(torch.randn(1, 1, 1))" 2>/dev/null; then \
	    echo "FASTRNN_CPU_ISA=$$isa"; \
	    FASTRNN_CPU_ISA=$$isa $(PY) -m pytest tests/test_against_torch.py tests/test_ops.py -q -p no:cacheprovider || exit 1; \
	  else echo "FASTRNN_CPU_ISA=$$isa: not supported by this CPU, skipped"; fi; \
	done
	for half in native float32; do \
	  echo "FASTRNN_CPU_HALF=$$half"; \
	  FASTRNN_CPU_HALF=$$half $(PY) -m pytest tests/test_low_precision.py tests/test_autocast.py \
	    -q -p no:cacheprovider || exit 1; \
	done

# The C++ library for libtorch users, and its test of the cell math (ctest).
test-cpp: $(DEPS)
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake -S . -B build/cmake -G Ninja \
	    -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')"
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build build/cmake -j2
	PATH="$(abspath $(VENV))/bin:$$PATH" ctest --test-dir build/cmake --output-on-failure

$(CUDA_DEPS): tests/requirements.txt
	$(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_PY) -m pip install -q "$(CUDA_TORCH)" ninja setuptools wheel -r tests/requirements.txt
	if [ -z "$${CUDA_HOME:-}" ] && ! command -v nvcc >/dev/null; then \
	  echo "no nvcc: the CUDA toolkit's pip packages ($(CUDA_TOOLKIT))"; \
	  $(CUDA_PY) -m pip install -q "$(CUDA_TOOLKIT)"; fi
	touch $(CUDA_DEPS)

$(CUDA_EXT): $(CUDA_DEPS) $(CSRC) setup.py tools/cuda_build.py $(wildcard fastrnn/*.py)
	PATH="$(abspath $(CUDA_VENV))/bin:$$PATH" FASTRNN_CUDA=1 $(CUDA_PY) setup.py -q build --force \
	    --build-lib $(CUDA_LIB) --build-temp build/cuda-ext
	touch $(CUDA_EXT)

build-cuda: $(CUDA_EXT)

# pytest puts the pythonpath entries first on sys.path: build/cuda-lib's
# fastrnn before the checkout's
test-cuda-build: build-cuda
	FASTRNN_EXPECT_CUDA=1 $(CUDA_PY) -m pytest tests -q -p no:cacheprovider \
	    -o pythonpath="$(CUDA_LIB) ." $(ARGS)

# The emulated device's own build (build/emulated, ninja: only what changed),
# then tests/ on it in the forward and the reversed block order
# (tools/emulated.py; `tools/emulated.py test --asan` for AddressSanitizer).
test-cuda-emulated: $(DEPS)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) tools/emulated.py test -q $(ARGS)

# On a GPU machine, with its own python3 and CUDA torch (no venv: such machines
# have no package index). Built for the architecture of the GPU present (not
# the default list, which takes minutes more) into build/gpu-lib; then the
# tests marked cuda, the CUDA build's and the DDP ones; then the GPU benchmark
# grid, batch 1 to 256, hidden 64 to 1024, seq_len 10 to 1000, in each dtype
# (a dtype whose check fails does not stop the others). Results in build/gpu-*.
GPU_PY    ?= python3
GPU_LIB   := build/gpu-lib
GPU_BENCH ?= --sizes small,seed,medium,large,huge --seq-lens 10,100,1000 --target-time 0.1 --warmup 2
test-gpu:
	TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-$$($(GPU_PY) -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}" \
	    FASTRNN_CUDA=1 $(GPU_PY) setup.py -q build --force --build-lib $(GPU_LIB) --build-temp build/gpu-ext
	FASTRNN_EXPECT_CUDA=1 $(GPU_PY) -m pytest tests/test_cuda.py tests/test_cuda_build.py \
	    tests/test_distributed.py -q -p no:cacheprovider -o pythonpath="$(GPU_LIB) ." \
	    --junitxml build/gpu-tests.xml $(ARGS)
	status=0; for dtype in float32 bfloat16 float16; do \
	  PYTHONPATH="$(GPU_LIB):." $(GPU_PY) -m benchmarks.bench --device cuda --dtype $$dtype \
	      $(GPU_BENCH) --no-progress --no-plot --json build/gpu-bench-$$dtype.json || status=1; \
	done; exit $$status

bench-smoke: build
	$(PY) -m benchmarks.bench --smoke --no-plot --json build/bench-smoke.json
	FASTRNN_BENCH_SMOKE=1 $(PY) -m pytest benchmarks -q --benchmark-only

lint: $(DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror $(CXX_FILES)

format: $(DEPS)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(CXX_FILES)

clean:
	rm -rf build dist *.egg-info fastrnn/_C*.so
