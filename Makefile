# Two set-up commands for users: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo docs docs-check lint typecheck unit bench benchmarks-md bench-compare mutation e2e e2e-scale docs-screenshots constraints matrix matrix-newest matrix-constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The provider and the emulator (emulator/: the modelreg-emulator distribution, issue 21), both editable, with the
# exact pins of constraints.txt. Installed by uv (pinned there too, a development tool only): the same packages as
# pip resolves from the same pins, in ~10 s instead of ~45 s (parallel downloads and unpacking), byte-compiled on
# all cores afterwards. uv reads no pip configuration: it installs from PyPI.
$(STAMP): $(BIN)/python pyproject.toml emulator/pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt uv
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[test,dev]" -e ./emulator
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_modelreg emulator tests dags_examples bench e2e ci
	$(BIN)/ruff format --check airflow_provider_modelreg emulator tests dags_examples bench e2e ci

typecheck: $(STAMP)
	$(BIN)/mypy

# Four workers on two cores: much of the suite waits (on emulators, subprocesses, deadlines) rather than computes.
# Tests sharing a module-scoped fixture stay on one worker (tests/conftest.py); the order is random per run
# (pytest-randomly prints the seed: `PYTEST_ARGS=--randomly-seed=N` repeats it, `PYTEST_ARGS="-p no:randomly"` keeps
# file order). `PYTEST_XDIST=` runs in one process.
PYTEST_XDIST ?= -n 4
unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# mypy (one core, ~12 s) runs beside the suite, whose workers spend much of their time waiting
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck unit

demo: $(STAMP)
	$(BIN)/python -m dags_examples.demo

# The documentation site (mkdocs.yml, docs/; issue 26): the `docs` extra (exact pins), a --strict build (a warning, a
# broken link or a docstring mkdocstrings cannot read fails it) into out/docs/site, then every internal link and
# anchor of the built HTML checked (ci/check_docs.py).
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[test,dev,docs]" -e ./emulator
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf out/docs/site
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --config-file mkdocs.yml
	$(BIN)/python ci/check_docs.py out/docs/site

# The built site in headless Chromium (Debian chromium + chromium-driver, installed as root when missing): the front
# page, a how-to with its included example DAG, and the search finding an operator; screenshots in out/docs/screenshots.
docs-check: docs
	$(BIN)/python -m ci.docs_browser out/docs/site

# Runs write only under out/ (ignored): bench -> out/bench/results.json, e2e -> out/e2e/p5.json and screenshots.
bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt apache-airflow-providers-http -e ".[bench]"
	$(BIN)/python -m bench.run

# The only writer of BENCHMARKS.md: records the runs found under out/ that are newer than bench/records.json there,
# then renders BENCHMARKS.md from bench/records.json (each figure with the date, machine and versions of its run).
benchmarks-md: $(STAMP)
	$(BIN)/python -m bench.run --render

# Refresh the committed connection-form screenshots in docs/ from the last make e2e (out/e2e/screenshots/).
SCREENSHOTS := connection-form-pai.png connection-form-fabric.png connection-form-pai-filled.png connection-saved-pai.png connection-test-pai.png
docs-screenshots:
	@for f in $(SCREENSHOTS); do test -f out/e2e/screenshots/$$f || { echo "out/e2e/screenshots/$$f is missing: run make e2e first"; exit 1; }; done
	cd out/e2e/screenshots && cp $(SCREENSHOTS) ../../../docs/

# Anchor ratios of one benchmark on BASE and on the working tree, alternately, RUNS times each (medians).
BENCH ?= p3
RUNS ?= 3
bench-compare: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt apache-airflow-providers-http
	$(BIN)/python -m bench.compare --base $(BASE) --bench $(BENCH) --runs $(RUNS) --head $(or $(HEAD),WORKTREE)

# Mutation testing (mutmut) of the trust cores, module by module, each against its own test selection (ci/mutation.py;
# docs/TESTING.md). Writes only under out/mutation/; fails when a module scores below 90% of its non-equivalent
# mutants. MODULES="approval watch" runs a subset.
mutation: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,dev,mutation]" -e ./emulator
	$(BIN)/python ci/mutation.py $(MODULES)

# Real services end to end (PostgreSQL, scheduler, triggerer, browser); installs Debian packages as root if missing.
e2e: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,e2e]" -e ./emulator
	$(BIN)/python -m e2e.run

# Airflow's distributed engine (docs/scale.md): PostgreSQL, Redis (Debian's redis-server), CeleryExecutor with
# two workers, two triggerers, 500 mapped deferrable waits, a SIGKILLed triggerer, the asset watcher's deploys and
# burst latency; about 10 min on 2 cores. Figures under out/e2e-scale/ (`make benchmarks-md` puts them in BENCHMARKS.md).
e2e-scale: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,e2e]" -e ./emulator
	$(BIN)/python -m e2e.scale

# Airflow version matrix: build and check the wheels and sdists (provider and emulator), then for each of Airflow 2.11,
# 3.0, 3.1 and 3.2 a clean venv with both wheels (pins: constraints/airflow-X.txt), the whole suite and example DAG (a)
# against the emulator; two cells at a time, results under out/matrix/ (ci/matrix.py). Needs no .venv: it builds its own.
matrix:
	$(PYTHON) ci/matrix.py run $(MATRIX_ARGS)

# "Today's newest" (issue 21): per Airflow minor 2.11-3.3 a fresh online resolve of Airflow + both wheels with only the
# pins of constraints/airflow-X.in (the known upstream incompatibilities), then import, `airflow providers list` and
# example DAG (a) under `airflow dags test`. Not reproducible by design: it fails when a new upstream release breaks
# the install, naming the step and the packages resolved unlike the tested pins. Results under out/matrix/newest/.
matrix-newest:
	$(PYTHON) ci/matrix.py newest $(MATRIX_NEWEST_ARGS)

# Refresh constraints/build.txt and constraints/airflow-X.txt: the newest patch of each minor (constraints/airflow-X.in)
# resolved with the wheel and its test and e2e extras and the emulator's wheel, frozen.
matrix-constraints:
	$(PYTHON) ci/matrix.py refresh $(MATRIX_ARGS)

constraints:
	rm -rf /tmp/modelreg-constraints && $(PYTHON) -m venv /tmp/modelreg-constraints
	/tmp/modelreg-constraints/bin/pip install -q -e ".[test,dev,e2e,bench]" -e ./emulator apache-airflow-providers-http
	/tmp/modelreg-constraints/bin/pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
