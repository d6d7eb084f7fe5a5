# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PEERS  := benchmarks/.peers/venv
PEERS_STAMP := $(PEERS)/.installed
PYTEST_ARGS ?=
# e.g. DEMO_ARGS=--keep: leave the deployment (and the portal) running at the end
DEMO_ARGS ?=

.PHONY: demo test bench lint venv peers browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(PY) -m demo $(DEMO_ARGS)

test: $(STAMP) browser
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# The portal's browser test drives Debian's chromium and its driver; installed once if missing
# (the test is skipped, with the reason, where they cannot be installed, except under CI=true).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	    || echo "could not install chromium and chromium-driver: the portal's browser test will be skipped"; }

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy mpc parties demo benchmarks tests

# Peers whose pins clash with ours (openmined-psi pins protobuf 6) get their own venv.
# A failed install is recorded by the benchmark as the reason instead of a number.
peers: $(PEERS_STAMP)

$(PEERS_STAMP): benchmarks/peers/requirements.txt
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	-$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	-$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt > $(PEERS)/install.log 2>&1 \
	  && touch $@ || echo "peer install failed: see $(PEERS)/install.log"

bench: $(STAMP)
	-@$(MAKE) --no-print-directory peers
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache .hypothesis
