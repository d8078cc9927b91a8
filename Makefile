# Every target sets up .venv first (idempotent: a stamp file tracks pyproject.toml).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
STATION ?= stations/sim-small.yaml
LIMITS ?= tests_hil/limits/cm12.yaml

SYSTEM_STAMP := $(VENV)/.system
NODE_STAMP := node_modules/.installed
# Debian packages the tests need: a PostgreSQL server (records tests start their own) and
# Chromium (the report test opens the Allure report headless).
APT_PACKAGES := postgresql chromium

.PHONY: venv system node test unit hil qualify lint bench screenshots clean

venv: $(STAMP) $(SYSTEM_STAMP) $(NODE_STAMP)

system: $(SYSTEM_STAMP)

node: $(NODE_STAMP)

$(SYSTEM_STAMP): | $(STAMP)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then \
	  echo "system packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	else \
	  echo "warning: not root; install $(APT_PACKAGES) with apt-get for the PostgreSQL and browser tests"; \
	fi
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The unit tests run on TEST_JOBS pytest-xdist workers (each test owns its temporary folders,
# ports and processes), a whole module per worker (--dist loadfile): a module-scoped fixture
# then runs once (the verdict map's runs the suite on 27 modules), and the kiosk browser
# tests' fleet page finds the runs the module's earlier tests made. A test still running after
# 20 min is stopped with a stack dump rather than hanging CI. The HIL suite runs after them in
# one process, since it holds the station.
# The suites' evidence goes to a temporary folder: tests never write into the checkout's out/
# (tests_unit/conftest.py fails the session if any test wrote into the checkout).
# Bytecode, pytest's assertion-rewritten modules included, is cached in a temporary folder
# (PYTHONPYCACHEPREFIX) shared by every Python process the tests start, and removed after:
# with PYTHONDONTWRITEBYTECODE set, every pytest and harness process the tests start compiled
# and rewrote every harness module it imports again (a simulated suite run: 10.7 s of CPU
# against 8.0 s with the cache warm).
TEST_JOBS ?= 2
TEST_ENV = env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$$pyc
test: venv
	@ev=$$(mktemp -d -t harness-test-evidence-XXXXXX); pyc=$$(mktemp -d -t harness-pyc-XXXXXX); \
	$(TEST_ENV) $(PY) -m pytest tests_unit -n $(TEST_JOBS) --dist loadfile --timeout 1200 --timeout-method thread -q $(PYTEST_ARGS); unit=$$?; \
	$(TEST_ENV) $(PY) -m pytest tests_hil --station $(STATION) --limits $(LIMITS) --evidence-dir $$ev -q $(PYTEST_ARGS); \
	hil=$$?; rm -rf $$ev $$pyc; echo "unit tests: exit $$unit; HIL suite: exit $$hil"; \
	[ $$unit -eq 0 ] && [ $$hil -eq 0 ]

unit: venv
	@pyc=$$(mktemp -d -t harness-pyc-XXXXXX); \
	$(TEST_ENV) $(PY) -m pytest tests_unit -n $(TEST_JOBS) --dist loadfile -q $(PYTEST_ARGS); \
	status=$$?; rm -rf $$pyc; exit $$status

# The qualification suite on the simulated 12 MP station, then the single-file Allure report
# (out/report/index.html); the suite's exit status is kept.
qualify: venv
	$(PY) -m pytest tests_hil --station stations/sim.yaml --limits $(LIMITS) \
	  --evidence-dir out/evidence --records out/records.sqlite \
	  --alluredir out/allure-results --clean-alluredir -q $(PYTEST_ARGS); \
	status=$$?; $(VENV)/bin/harness report out/allure-results --out out/report || status=1; \
	exit $$status

lint: venv
	$(VENV)/bin/ruff check harness tests_unit tests_hil bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

bench: venv
	$(PY) -m bench

# The station app's browser tests, their screenshots kept in out/screenshots (the kiosk's
# prompt, PASS, FAIL, ABORTED and four-slot screens, the fleet and run pages; out/ is written
# on purpose here, so the check that tests leave the checkout alone is lifted).
screenshots: venv
	HARNESS_SCREENSHOTS=out/screenshots HARNESS_ALLOW_CHECKOUT_WRITES=1 $(PY) -m pytest tests_unit/test_browser_kiosk.py -q

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
