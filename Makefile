# creditlab: `make demo` (main job) and `make test` (tests) both set up the environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
# Offline datasets: ../shared/data when present (CI); otherwise the library downloads into ~/.cache.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(CREDITLAB_DATA),)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
export CREDITLAB_DATA := $(SHARED_DATA)
endif
endif

.PHONY: setup test test-cpus demo bench bench-quick lint report docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,docs,fast,nir,interop]"
	$(PY) -m pip install -q --no-deps "neurobench==2.3.0" "norse==1.1.0"  # see pyproject's interop extra
	touch $@

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

# The numerically sensitive tests (bitwise repeatability, round-off tolerances) again with other CPUs'
# kernels, forced on this one: ATen's baseline and AVX2 code paths, MKL's SSE2-compatible and AVX2
# GEMMs, oneDNN capped to match. `make test` runs this CPU's own (AVX-512 where it has it).
NUMERIC_TESTS := tests/test_trajectories.py tests/test_gaitprop.py tests/test_fa.py tests/test_fa_theory.py \
	tests/test_dfa.py tests/test_kp.py tests/test_gevb.py tests/test_vnn.py tests/test_train.py tests/test_truenorth.py \
	tests/test_sal_sampling.py tests/test_spiking_kernels.py
CPU_KERNELS := "ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41" \
	"ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"

test-cpus: setup
	@for kernels in $(CPU_KERNELS); do \
		env $$kernels $(PY) -c "import torch; print('== $$kernels: ATen CPU capability', torch.backends.cpu.get_cpu_capability())" && \
		env $$kernels $(PY) -m pytest -q -n 2 --dist loadfile $(NUMERIC_TESTS) || exit 1; \
	done

demo: setup
	$(VENV)/bin/creditlab demo

bench: setup
	$(PY) benchmarks/step_time.py --out results/bench.jsonl

bench-quick: setup
	$(VENV)/bin/creditlab bench quick && $(VENV)/bin/creditlab report results

docs: setup
	$(VENV)/bin/creditlab report results --out site-report --docs docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache site site-report docs/generated
