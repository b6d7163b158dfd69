# One place for setup, the main job and the tests. Needs only Python 3 and a
# C++ compiler: every target creates .venv, installs torch and the tools, and
# builds fastrnn into the checkout, each step only when what it depends on
# changed.
#
# make run     the main job: RNN, LSTM and GRU at seq_len 10, 20, 30 on the
#              built-in text, trained on fastrnn and on torch.nn (experiments.compare)
# make test    the library's tests, the experiments' tests, the lower ISAs,
#              the C++ tests (ctest) and a smoke run of the benchmark
# make bench   the kernel benchmark against torch.nn (benchmarks.bench)
# make test-cuda-build  the CUDA build (FASTRNN_CUDA=1, no GPU needed) in its
#              own venv (.venv-cuda, a CUDA torch): every op has a CUDA kernel,
#              and the library's tests pass there
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
CXX_FILES = $$(git ls-files 'csrc/*.h' 'csrc/*.cpp' 'tests/cpp/*.cpp')
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

.PHONY: setup build run bench test test-py test-isa test-cpp bench-smoke lint format clean \
	build-cuda test-cuda-build

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

bench: build
	$(PY) -m benchmarks.bench $(ARGS)

test: test-py test-isa test-cpp bench-smoke

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
