# The two commands of the README: `make run` and `make test`. Everything they need is
# installed here, so a fresh clone with python3 (>= 3.11) and make is enough.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test test-hostile install install-test test-services deploy-tools deb bench bench-quick bench-logins bench-cluster bench-tasks bench-search clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A plain (non-editable) install: the daemon and the tests run what a wheel ships.
# setuptools keeps build/ between installs, and with it files deleted from the tree
# since (a schema delta renamed would be shipped twice): start from none.
# The terminal client's extra (urwid) comes along, so `.venv/bin/termrooms chat` works at once.
install: $(BIN)/python
	rm -rf build
	$(BIN)/python -m pip install --quiet '.[chat]'

install-test: $(BIN)/python
	rm -rf build
	$(BIN)/python -m pip install --quiet '.[test,chat]'

run: install
	$(BIN)/twistd --nodaemon --pidfile= termrooms $(ARGS)

# Redis: the tests use one on 127.0.0.1:6379 when it answers, else start redis-server
# themselves; install it when it is missing and this machine lets us.
test-services:
	@if ! command -v redis-server >/dev/null 2>&1 && \
	    ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server for the tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "warning: no Redis found and cannot install redis-server; Redis tests will not run"; \
	  fi; \
	fi
	@$(MAKE) --no-print-directory deploy-tools

# nginx, haproxy and pgbouncer: the tests check docs/deploy/ with the real tools and run
# a daemon behind PgBouncer; systemd-analyze checks the unit; the web client's tests drive
# Debian's Chromium (Playwright's own browser download is not used) and run node --test;
# npm installs the benchmark's Node.js peers (tests/test_bench.py); promtool (Debian ships it
# in prometheus) checks and unit-tests docs/deploy/alerts.yml. Installed when missing,
# without starting their services (a policy-rc.d that says no, only for the install and
# only when there is none already).
DEPLOY_TOOLS := nginx:nginx-light haproxy:haproxy pgbouncer:pgbouncer systemd-analyze:systemd \
	chromium:chromium node:nodejs npm:npm promtool:prometheus
deploy-tools:
	@missing=""; \
	for tool in $(DEPLOY_TOOLS); do \
	  binary=$${tool%%:*}; \
	  command -v $$binary >/dev/null 2>&1 || [ -x /usr/sbin/$$binary ] || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing for the tests"; \
	    blocker=; \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      blocker=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$blocker; chmod 755 $$blocker; \
	    fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    status=$$?; \
	    if [ -n "$$blocker" ]; then rm -f $$blocker; fi; \
	    [ $$status = 0 ] || echo "warning: could not install$$missing; their tests will not run"; \
	  else \
	    echo "warning:$$missing missing and cannot be installed here; their tests will not run"; \
	  fi; \
	fi

# make deb: dist/termrooms_VERSION_ARCH.deb, the daemon in a virtualenv of its own
# (/opt/venvs/termrooms), with the hardened unit, /etc/termrooms/, the termrooms user and
# the command on the PATH; packaging/deb/build.sh says how, docs/deploy.md how to use it.
# Rebuilt only when a file it is made of changed. Its virtualenv is made with Debian's
# python3 (DEB_PYTHON), the interpreter the package depends on, never a pyenv one.
# dpkg-shlibdeps (dpkg-dev) finds the libraries its compiled code needs: installed
# when missing, as the deployment tools are.
DEB_PYTHON ?= /usr/bin/python3
DEB_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := dist/termrooms_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_SOURCES := pyproject.toml README.md $(shell find termrooms twisted sql systemd packaging \
	-type f ! -name '*.pyc' ! -name dropin.cache 2>/dev/null)
deb: $(DEB)
$(DEB): $(DEB_SOURCES) | $(BIN)/python
	@$(MAKE) --no-print-directory deploy-tools DEPLOY_TOOLS="dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev"
	rm -rf build/lib build/bdist.* build/deb/wheel
	$(BIN)/python -m pip wheel --quiet --no-deps -w build/deb/wheel .
	PYTHON=$(DEB_PYTHON) packaging/deb/build.sh \
	  build/deb/wheel/termrooms-$(DEB_VERSION)-py3-none-any.whl $(DEB_VERSION) $(DEB_ARCH) $@

# The suite runs on every core (at most three workers: each takes a Redis db of its own,
# 13 to 15), workers stealing tests from each other so that one long test does not leave
# the other core idle at the end. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
test: install-test test-services
	$(BIN)/ruff check termrooms tests twisted bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -n $(PYTEST_WORKERS) --maxprocesses 3 --dist worksteal $(PYTEST_ARGS)

# The hostile suite's long variants (more load, longer outages, thousands of fuzz
# examples), then docs/reliability.md's table rewritten from what the run measured.
# tests/test_deb.py too: building, installing and purging the package takes 41-50 s
# from a clean tree, too long for the default suite's budget.
HOSTILE_TESTS ?= tests/faults tests/fuzz tests/attacks tests/test_deb.py
test-hostile: install-test test-services
	TERMROOMS_HOSTILE=1 $(BIN)/pytest $(HOSTILE_TESTS) $(PYTEST_ARGS)
	$(BIN)/python tests/reliability_report.py

# termrooms against Node.js + ws + pg and Node.js + Socket.IO + pg (bench/peers/, installed
# with npm by the command), S1-S5 and S7, one table per scenario, JSON in bench/results/.
# bench-quick is CI's: seconds per scenario, it fails on any lost, duplicated or
# out-of-order delivery and never on a speed. BENCH_ARGS for more, e.g. "--soak 30" (S6)
# or "--only S3 --profile /tmp/profile" (py-spy on termrooms). Then the search line:
# GET /api/search over 1M messages (bench-search; BENCH_SEARCH_ARGS for it).
bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet '.[bench]'
	cd bench && ../$(BIN)/python compare.py --database-url $(BENCH_DATABASE_URL) $(BENCH_ARGS)
	$(BIN)/python bench/search.py --database-url $(BENCH_DATABASE_URL) $(BENCH_SEARCH_ARGS)

bench-quick: install
	cd bench && ../$(BIN)/python compare.py --quick --output ../test-output/bench \
	  --database-url $(BENCH_DATABASE_URL) $(BENCH_ARGS)

# Logins per second with the default argon2id parameters (needs a PostgreSQL where a
# scratch database can be made: BENCH_DATABASE_URL, default postgres@127.0.0.1:5432).
BENCH_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
bench-logins: install
	$(BIN)/python bench/logins.py --database-url $(BENCH_DATABASE_URL)

# One room's fan-out with its subscribers split over 1 and then 2 instances (one database,
# a private redis-server unless BENCH_REDIS_URL is set); BENCH_ARGS for more, e.g.
# BENCH_ARGS="--duration 30 --rates 100,200,400".
BENCH_REDIS_URL ?=
BENCH_ARGS ?=
bench-cluster: install
	$(BIN)/python bench/cluster.py --database-url $(BENCH_DATABASE_URL) \
	  $(if $(BENCH_REDIS_URL),--redis-url $(BENCH_REDIS_URL)) $(BENCH_ARGS)

# GET /api/tasks pages with 100k tasks stored: requests/s, p50/p95, and the indexes their
# queries read (a sequential scan of tasks fails it); BENCH_ARGS for more, e.g.
# BENCH_ARGS="--tasks 1000000 --explain".
bench-tasks: install
	$(BIN)/python bench/tasks.py --database-url $(BENCH_DATABASE_URL) $(BENCH_ARGS)

# GET /api/search over 1M messages with the visibility rule: requests/s, p50/p95, the
# indexes each search reads (a sequential scan of room_events fails it), and what the
# search index costs each stored message; BENCH_SEARCH_ARGS for more, e.g.
# BENCH_SEARCH_ARGS="--messages 100000 --explain".
bench-search: install
	$(BIN)/python bench/search.py --database-url $(BENCH_DATABASE_URL) $(BENCH_SEARCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info

# systemd/termrooms.toml.sample lists every setting; rewrite it after adding one.
.PHONY: sample-config
sample-config: install
	$(BIN)/python -c 'from termrooms.sample_config import sample_config_file; print(sample_config_file(), end="")' > systemd/termrooms.toml.sample
