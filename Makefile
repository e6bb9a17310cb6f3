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

.PHONY: setup test demo bench bench-quick lint report docs clean

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
