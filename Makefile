# The two commands a user needs: `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/fashion_mnist
CONFIG ?= experiments/fashion_mnist.py
FASHION_MNIST_FILES ?= /usr/share/datasets/fashion-mnist

.PHONY: train test test-fast lint install install-test data clean-venv gpu-wheels

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-prepare.txt requirements-onnx.txt
	$(PY) -m pip install -q -r requirements-test.txt
	$(PY) -m pip install -q --no-deps -r requirements-onnx.txt  # the ONNX export's extra (see the file)
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Debian ships the Fashion-MNIST IDX files; install them when missing and we can (root + apt).
data:
	@if [ ! -d $(FASHION_MNIST_FILES) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)); \
	  else \
	    echo "Fashion-MNIST files missing: run 'sudo apt-get install dataset-fashion-mnist'"; exit 1; \
	  fi; \
	fi

train: install data
	$(PY) -m alexnet_jax.main --workdir=$(WORKDIR) --config=$(CONFIG)
	@echo "Results: $(WORKDIR)/summary.json; curves: $(PY) -m tensorboard.main --logdir $(WORKDIR)"

# The linter and formatter first (seconds), then the suite.
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Test files spread over TEST_WORKERS processes (a file's tests, and its module fixtures, stay in one).
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

# The quick subset (under 2 minutes here): every test not marked slow, i.e. none that starts a
# subprocess or trains. Spread test by test (its short tests balance better than whole files).
test-fast: install-test
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist load -m "not slow" tests

clean-venv:
	rm -rf $(VENV)

# The wheels a GPU host lacks (no network there), for its CPython 3.12 on x86-64, into .whl/ (ignored; it
# travels with the working tree): GPU_HOST_PACKAGES at requirements.txt's versions, then
# requirements-gpu-host.txt (what they need that the host lacks); sdist-only ones are built into wheels.
GPU_HOST_PACKAGES := tensorflow-datasets grain array-record simplejpeg ml-collections importlib_resources
WHEEL_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64
gpu-wheels:
	rm -rf .whl && mkdir .whl
	for name in $(GPU_HOST_PACKAGES); do grep -x "$$name==[^ ]*" requirements.txt || exit 1; done >.whl/wanted.txt
	grep -v -e '^#' -e 'sdist only' requirements-gpu-host.txt >>.whl/wanted.txt
	grep 'sdist only' requirements-gpu-host.txt | sed 's/ *#.*//' >.whl/built.txt
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  $(addprefix --platform ,$(WHEEL_PLATFORMS)) -d .whl -r .whl/wanted.txt
	$(PYTHON) -m pip wheel -q --no-deps --no-binary=:all: -w .whl -r .whl/built.txt
	@echo "$$(ls .whl/*.whl | wc -l) wheels, $$(du -sh .whl | cut -f1) in .whl/"
