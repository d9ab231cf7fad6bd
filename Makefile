# Two commands from a bare machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# System packages the integration tests need: a real broker, a pty pair for
# RTU, the Laravel app the side-car delivers to, and promtool (package prometheus)
# to lint /metrics.
SYSTEM_PKGS := mosquitto mosquitto-clients socat php-cli php-sqlite3 php-mbstring php-xml php-laravel-framework prometheus chromium
SYSTEM_BINS := mosquitto mosquitto_sub socat php promtool chromium

.PHONY: venv dist demo test test-fast lint bench bench-startup system-deps clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	@touch $(STAMP)

venv: $(STAMP)

# A wheel to install elsewhere (the package is not on PyPI): dist/modbus_mqtt_bridge-*.whl
DIST ?= dist
dist:
	@test -x $(BIN)/pip || $(MAKE) venv
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(DIST) .

system-deps:
	@missing=""; for b in $(SYSTEM_BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ] || [ ! -d /usr/share/php/Illuminate ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(SYSTEM_PKGS) >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/modbus-mqtt-bridge demo

test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy modbus_mqtt_bridge
	$(BIN)/python -m pytest -q tests/unit/test_import_contract.py

# One table of the issue-16 targets (start-up, device payload, RTU, latency, per-register).
bench: system-deps $(STAMP)
	$(BIN)/python bench/targets.py

# Load + plan 20,000 registers, against main in the same run (no broker needed).
bench-startup: $(STAMP)
	$(BIN)/python bench/startup.py --compare main

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
