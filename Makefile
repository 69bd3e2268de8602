# The two quick-start commands of the README: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/conductor: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The session sandbox needs bubblewrap and socat (Linux; macOS has its own sandbox).
# Installed with apt-get where it is there and we may use it; otherwise a line says what to do.
.PHONY: demo test test-postgres lint sandbox postgres browser
sandbox:
	@if [ "$$(uname)" = Linux ] && ! { command -v bwrap && command -v socat; } >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq bubblewrap socat >/dev/null; \
		else \
			echo "install bubblewrap and socat for the session sandbox (apt-get install bubblewrap socat)"; \
		fi; \
	fi

# The tests' PostgreSQL server (tests/postgres.py starts one; Debian puts initdb and pg_ctl in
# /usr/lib/postgresql/*/bin, not on PATH). Only the tests need it, not the demo.
postgres:
	@if ! { command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
		else \
			echo "install postgresql for the tests (apt-get install postgresql)"; \
		fi; \
	fi

# The browser view's tests drive Debian's chromium through its chromedriver (selenium, from
# the test extra). Only the tests need them, not the demo or `conductor serve`.
browser:
	@if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
		else \
			echo "install chromium and chromium-driver for the browser tests (apt-get install chromium chromium-driver)"; \
		fi; \
	fi

# DEMO: options for it, e.g. make demo DEMO=--keep
demo: sandbox $(BIN)/conductor
	$(BIN)/conductor demo $(DEMO)

test: sandbox postgres browser $(BIN)/conductor
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/mypy
	$(BIN)/pytest -q
	CONDUCTOR_TEST_STORE=postgresql $(BIN)/pytest -q $(PG_SUITES)

# The bus's suites again with their `store` fixture on PostgreSQL (a real server, started by
# tests/postgres.py); `make test` runs them after the whole suite (where the storage
# conformance suite already runs both backends).
PG_SUITES = tests/test_claims.py tests/test_lock.py tests/test_messages.py tests/test_reviews.py \
	tests/test_sync.py tests/test_review_gate.py tests/test_live.py tests/test_live_view.py
test-postgres: postgres $(BIN)/conductor
	CONDUCTOR_TEST_STORE=postgresql $(BIN)/pytest -q $(PG_SUITES)

lint: $(BIN)/conductor
	$(BIN)/ruff check .
