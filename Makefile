# wsgistack — developer entry points. `make demo` and `make test` work on a fresh
# Debian/Ubuntu machine: they create the venv and install what is missing.
# Debian's own python3 when there is one: started as root, wsgistack runs the app as an
# unprivileged user, who can read /usr/bin/python3 but not, say, a pyenv under /root.
PYTHON ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo demo-flask test test-fast system-deps lint clean help

help:
	@echo "make demo        serve the Django demo through nginx + uWSGI on http://127.0.0.1:8000"
	@echo "make demo-flask  the same for the Flask demo"
	@echo "make test        run the whole test suite (real nginx, uWSGI, Docker when available)"
	@echo "make test-fast   unit and golden tests only"

# System packages: nginx (the web server we put in front) and python3-venv; for `make test`
# also what the tests run for real: gcc (the term-drain library the Heroku image compiles),
# HAProxy (the balancer), MariaDB (the primary/replica pair), pebble (an ACME server),
# Chromium and its driver (the status page in a browser), PostgreSQL and Redis (the product
# fixture's database and queue in tests/userpaths, each a private server the tests start) and
# git (a user's checkout). Installed with apt-get when we are root (waiting up to 10 minutes
# for another apt's dpkg lock); otherwise the exact command is printed and make stops. Each
# line: a command or file that shows the package is there, then the package(s).
# apt-get's DPkg::Lock::Timeout covers dpkg's lock, not the lists lock `apt-get update` takes:
# on a fresh machine an apt started at boot holds that one, so update is retried (10 minutes).
DEMO_DEPS = nginx:nginx-light
TEST_DEPS = gcc:gcc /usr/include/signal.h:libc6-dev haproxy:haproxy mariadbd:mariadb-server \
            pebble:pebble chromium:chromium chromedriver:chromium-driver \
            /usr/lib/postgresql/*/bin/initdb:postgresql redis-server:redis-server git:git
system-deps:
	@missing=""; \
	for dep in $(DEMO_DEPS) $(if $(NEED_TEST),$(TEST_DEPS)); do \
	  probe=$${dep%%:*}; pkg=$${dep#*:}; \
	  case $$probe in /*) [ -e $$probe ] ;; *) command -v $$probe >/dev/null 2>&1 || [ -x /usr/sbin/$$probe ] ;; esac \
	    || missing="$$missing $$pkg"; \
	done; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    tries=0; \
	    until apt-get -o DPkg::Lock::Timeout=600 update -qq; do \
	      tries=$$((tries + 1)); \
	      if [ $$tries -ge 60 ]; then echo "apt-get update kept failing (another apt holding its lists lock?)"; exit 1; fi; \
	      echo "apt-get update failed (another apt may hold /var/lib/apt/lists/lock): again in 10 s ($$tries/60)"; sleep 10; \
	    done; \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
	      install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

# $(VENV) is wsgistack's own environment; the demos use it as the app's environment too
# (Django, Flask and pyuwsgi are in it), named with --python so that a virtualenv active in
# the caller's shell (VIRTUAL_ENV) is not taken for the demo's. A real project keeps its own.
# As root, the demo's uWSGI, nginx workers and prestart steps run as the nginx worker user
# (www-data), so its data (SQLite, uploads) goes to a directory that user owns. In a checkout
# that user cannot read (e.g. under /root), the demo opts in to user = "root", and says so.
demo: system-deps $(STAMP)
	@set -e; \
	if [ "$$(id -u)" = 0 ]; then \
	  user=www-data; id -u $$user >/dev/null 2>&1 || user=nobody; \
	  export DEMO_DATA_DIR="$${DEMO_DATA_DIR:-/tmp/wsgistack-demo-data}"; \
	  install -d -m 755 "$$DEMO_DATA_DIR"; \
	  if runuser -u $$user -- $(BIN)/python -c "import wsgistack" >/dev/null 2>&1 && \
	     runuser -u $$user -- test -r "$(CURDIR)/examples/django_demo/manage.py"; then \
	    chown $$user: "$$DEMO_DATA_DIR"; \
	    echo "make demo: running as root, so the app runs as $$user; its data is in $$DEMO_DATA_DIR"; \
	  else \
	    export WSGISTACK_USER=root; \
	    echo "make demo: $$user cannot read this checkout or its venv, so the demo keeps uWSGI as root (user = root)."; \
	    echo "           Run it as a normal user, or from a directory $$user can read, to see the default."; \
	  fi; \
	fi; \
	exec $(BIN)/wsgistack run examples/django_demo --python $(abspath $(BIN))/python

demo-flask: system-deps $(STAMP)
	$(BIN)/wsgistack run examples/flask_demo --python $(abspath $(BIN))/python

test: NEED_TEST = 1
test: system-deps $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/golden $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
