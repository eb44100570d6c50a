# mysql-operator: every target the README documents. Set-up steps are idempotent and cached.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
STAMP     := $(VENV)/.installed
EXAMPLE   ?= mysql
SANDBOX   ?= sandbox
APT_PKGS  := mariadb-server mariadb-client mariadb-backup zstd iproute2 prometheus-mysqld-exporter prometheus iptables

.PHONY: help venv apt tools mysql lint unit crd test sandbox sandbox-down

help:
	@echo "make sandbox       local Kubernetes + chart + a Ready MySQL 9.7 cluster (EXAMPLE=mariadb: MariaDB)"
	@echo "make sandbox-down  stop the sandbox, leaving no process behind"
	@echo "make test          every test tier (unit, integration, e2e), with set-up"
	@echo "make lint          ruff + mypy"

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e '.[test]'
	@touch $@

venv: $(STAMP)

apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

tools:
	hack/build-tools.sh

mysql:
	hack/build-mysql.sh

lint: venv
	$(VENV)/bin/ruff check mysql_operator sandbox tests benchmarks
	$(VENV)/bin/mypy mysql_operator

crd: venv
	$(PY) -m mysql_operator crd --out-dir crds
	cp crds/*.yaml charts/mysql-operator/crds/
	@echo "README reference: python -m mysql_operator reference"

unit: venv
	$(PY) -m pytest -q tests/unit

sandbox: venv apt tools mysql
	$(PY) -m sandbox.demo up --example $(EXAMPLE) --name $(SANDBOX)

sandbox-down: venv
	$(PY) -m sandbox.demo down --name $(SANDBOX)

test: venv apt tools mysql lint
	$(PY) -m pytest -q --durations=25 tests
