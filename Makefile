# One place for setup, the main job and the tests. Needs only Python 3 and a
# C++ compiler: `make run` and `make test` create .venv, install torch and
# the build/test tools, and build fastrnn into it.
#
# make run     the main job: RNN, LSTM and GRU at seq_len 10, 20, 30 on the
#              built-in text, trained on fastrnn and on torch.nn (fastrnn.compare)
# make bench   the kernel benchmark against torch.nn (fastrnn.bench)
#
# torch must not be installed into an isolated build environment (another
# torch, broken ABI), so fastrnn is always built with --no-build-isolation.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
ARGS   ?=
STAMP  := $(VENV)/.fastrnn-deps

.PHONY: setup build run bench test test-py test-isa test-cpp bench-smoke clean

setup: build

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" numpy ninja pybind11 setuptools wheel \
	    pytest pytest-benchmark expecttest tqdm matplotlib cmake music21
	$(PY) -m pip install -q onnx onnxscript onnxruntime   # tests/test_export.py: torch.onnx.export, run by onnxruntime
	touch $(STAMP)

# Builds fastrnn/_C in place and installs the package in editable mode.
build: $(STAMP)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .

run: build
	$(PY) -m fastrnn.compare --backend both $(ARGS)

bench: build
	$(PY) -m fastrnn.bench $(ARGS)

test: test-py test-isa test-cpp bench-smoke

test-py: build
	$(PY) -m pytest tests -q $(ARGS)

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
test-cpp: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake -S . -B build/cmake -G Ninja \
	    -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')"
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build build/cmake -j2
	PATH="$(abspath $(VENV))/bin:$$PATH" ctest --test-dir build/cmake --output-on-failure

bench-smoke: build
	$(PY) -m fastrnn.bench --smoke --no-plot --json build/bench-smoke.json
	FASTRNN_BENCH_SMOKE=1 $(PY) -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf build dist *.egg-info fastrnn/_C*.so
