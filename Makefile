# promptcls: `make run` (README command 1) and `make test` (README command 2) work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
SERVER_ROOT ?= .mlflow-local
PORT ?= 5000
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export MLFLOW_EXPERIMENT_NAME ?= prompt-classification
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup system-deps run test server-start server-stop benchmark clean
setup: $(VENV)/.installed

# PostgreSQL (team tracking server tests) and Java (Spark) from Debian, only when missing (package lists first:
# a fresh image may have none).
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v java >/dev/null || { \
	  echo "installing postgresql and a Java runtime (Debian packages)"; \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update -q && $$sudo apt-get install -y -q postgresql default-jre-headless; }

# torch first, pinned: it is the CPU build from this machine's disk; an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[deep,transformers,explain,scale,serve,dev]"
	$(BIN)/python -m pip check
	touch $@

server-start: setup  ## start the local tracking server (SQLite + ./$(SERVER_ROOT)/artifacts) on 127.0.0.1:$(PORT)
	@$(BIN)/promptcls server start --root $(SERVER_ROOT) --port $(PORT) > $(SERVER_ROOT).env
	@cat $(SERVER_ROOT).env

server-stop:
	@$(BIN)/promptcls server stop --root $(SERVER_ROOT)

run: server-start  ## the main job: default experiment on the bundled corpus, logged to the local server
	source $(SERVER_ROOT).env && mlflow run . --env-manager local

test: setup system-deps
	$(BIN)/python -m pytest

benchmark: setup
	$(BIN)/python -m benchmarks.traditional

clean: server-stop
	rm -rf $(SERVER_ROOT) $(SERVER_ROOT).env
