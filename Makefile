# Driftguard: two commands do everything on a fresh machine.
#   make demo   - install, seed the demo world, run the DAGs end to end on embedded stores
#   make test   - install test tools, lint, the fast tier: unit, DAG integrity, SQLite integration (2 workers)
#   .ci/run     - CI: the whole suite (adds PostgreSQL, browser, topology, adversarial), `make test-ci`
#   make up     - the Airflow UI on the same embedded stores (not while `make demo` runs: same port)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DRIFTGUARD_HOME ?= $(CURDIR)/.driftguard
export DRIFTGUARD_FEATURE_LOG_URL ?= sqlite:///$(DRIFTGUARD_HOME)/feature_log.db
export GX_ANALYTICS_ENABLED := false

.PHONY: install test test-ci lint demo up screenshots bench scenarios gate-scenarios signal-backtests check clean browser

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt -e .
	@touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd include && $(BIN)/lint-imports ../pyproject.toml

check: install
	$(BIN)/driftguard check

# The UI browser test needs Debian's chromium + chromium-driver (apt, as root or via sudo). Locally a
# failed install only warns (the browser tests then skip loudly); CI sets DRIFTGUARD_REQUIRE_BROWSER=1.
browser:
	@bash scripts/install_browser.sh || echo "WARNING: chromium not installed; browser tests will skip"

# Test tiers (docs/testing.md). xdist runs test files on TEST_WORKERS processes (a file's fixtures are
# built once, in the worker that runs it); each worker has its own Airflow home and temp stores.
TEST_WORKERS ?= 2
PYTEST_XDIST := -n $(TEST_WORKERS) --dist loadfile
FAST_TIER := -m "not postgres and not browser and not topology and not adversarial and not bench" tests/unit tests/dags tests/integration

test: install lint
	$(BIN)/python -m pytest $(PYTEST_XDIST) --durations=15 $(FAST_TIER)

test-ci: install lint browser
	$(BIN)/python -m pytest $(PYTEST_XDIST) --durations=15

# Speed and memory: Driftguard's monitoring path vs the naive path, printed as a table
# (JSON in benchmarks/results/). BENCH_ARGS="--sizes 100k,1m,10m --db sqlite,postgres".
# Then the read paths side by side on whole windows (Arrow/ADBC, SQLAlchemy stream, PostgreSQL COPY,
# SQLite's cursor; `--reads 100k,1m --read-runs 3`, `--reads ""` to skip; docs/performance.md#read-paths).
# Then the backtest's seconds per monitoring-only and retraining interval against their targets
# (10k-row windows, one BLAS/OpenMP thread; about 1.5 minutes): `make bench-backtest` alone.
bench: install
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	PYTHONPATH=include:. $(BIN)/python -m benchmarks.backtest_speed $(BACKTEST_BENCH_ARGS)

.PHONY: bench-backtest
bench-backtest: install
	PYTHONPATH=include:. $(BIN)/python -m benchmarks.backtest_speed $(BACKTEST_BENCH_ARGS)

# How often the drift triggers fire on synthetic scenarios with known truth (stationary, seasonal,
# shifts at 5k and ~30 rows per window), calibrated thresholds against Evidently's fixed ones.
scenarios: install
	PYTHONPATH=include:. $(BIN)/python -m benchmarks.drift_scenarios $(SCENARIO_ARGS)

# Retraining decisions on scenarios with known truth, replayed by the backtest under policy / never /
# always with the same defaults (docs/gate.md §7; about 15 minutes with SCENARIO_JOBS=2).
# SCENARIO_ARGS="--only concept,stationary --seed 1".
gate-scenarios: install
	SCENARIO_JOBS=$${SCENARIO_JOBS:-2} PYTHONPATH=include:. $(BIN)/python -m benchmarks.gate_scenarios $(SCENARIO_ARGS)

# The signals issue's scenarios at its sizes (52 weekly windows of 5k rows, 36 monthly of ~30), through
# the backtest (policy / never / always): false alarms, detection delays, retrains (docs/drift-signals.md).
signal-backtests: install
	SCENARIO_JOBS=$${SCENARIO_JOBS:-2} PYTHONPATH=include:. $(BIN)/python -m benchmarks.signal_backtests $(SCENARIO_ARGS)

# Label-free performance estimates (CBPE / DLE, driftguard.statistics.estimation) against the realized metric
# and NannyML 0.13's CBPE / DLE on synthetic covariate shift (docs/estimation.md). NannyML runs from
# its own virtualenv (`make nannyml-venv`, about 2 minutes); without it only Driftguard is compared.
.PHONY: estimation-crosscheck nannyml-venv
NANNYML_VENV := $(CURDIR)/.venv-nannyml
estimation-crosscheck: install
	NANNYML_PYTHON=$${NANNYML_PYTHON:-$(NANNYML_VENV)/bin/python} PYTHONPATH=include:. \
		$(BIN)/python -m benchmarks.estimation_crosscheck $(CROSSCHECK_ARGS)

nannyml-venv:
	@test -x $(NANNYML_VENV)/bin/python || $(PYTHON) -m venv $(NANNYML_VENV)
	$(NANNYML_VENV)/bin/python -m pip install -q nannyml==0.13.1 statsmodels "pandas<3"

# Seed the demo world and replay 2013 week by week as real Airflow DAG runs, in one process
# with Airflow's public dag.test() (scripts/demo.py): 30 weekly monitoring runs (March to 2013-10-06,
# every outcome of the loop) and the retraining runs they ask for through the model's Asset, recorded
# in the embedded Airflow DB (`make up` shows them). Rerunnable: finished weeks are skipped.
# DEMO_ARGS="--weeks 0" replays the whole year (42 weeks), DEMO_ARGS="--weeks 13" the first 13;
# DEMO_ARGS=--scheduler replays through a running scheduler and the REST API instead (full fidelity,
# a process per task: over an hour).
DEMO_ARGS ?=
demo: install
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

# Airflow UI on the embedded stores: http://localhost:8080, user admin. The api-server, scheduler,
# dag-processor and triggerer of `airflow standalone`, without its migration on every start, and the
# UI first (scripts/up.py). UP_ARGS=--ready-exit prints how long the UI took to answer, then stops.
up: install
	$(BIN)/python scripts/up.py $(UP_ARGS)

# PNGs of the health board, model, candidate, runbook and the newest run's two reports in
# docs/screenshots/ (1280x800, palette PNGs), from the stores `make demo` left (scripts/screenshots.py).
screenshots: install browser
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(DRIFTGUARD_HOME)
