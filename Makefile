VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint system-deps bench clean

$(STAMP): pyproject.toml setup.py $(wildcard src/openfrp/analysis/fold*.[ch])
	bash scripts/system-deps.sh build
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

system-deps:
	bash scripts/system-deps.sh test

run: $(STAMP)
	bash scripts/system-deps.sh run
	$(VENV)/bin/openfrp demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src

test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest -q

# The quick benchmarks; bench/analyze_10m.py (a 3.5 GiB log) runs on its own.
bench: $(STAMP)
	bash scripts/system-deps.sh bench
	for name in fault_timing frp8_timing capacity analyze_many_files; do \
		$(PY) bench/$$name.py || exit 1; \
	done
	$(PY) bench/video.py --quick
	$(PY) bench/input.py --quick
	$(PY) bench/loss.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
