# sftpipe: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
ENV ?= artifacts/env/lf
BIN := $(ENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=
# Every target sees the environment's tools (sft, torchrun, llamafactory-cli) without activating it.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run dryrun dag test test-fast test-cluster test-accounting bench lint format

# The locked training environment (envs/lf, pinned by uv.lock) at meta_info.environment.sft_uv; re-synced when
# the lock changes. Bytecode is compiled at install: machines that set PYTHONDONTWRITEBYTECODE would otherwise
# recompile thousands of modules at every `sft`/`snakemake` start. PYTHON=3.12 builds it on Python 3.12.
PYTHON ?= 3.11
setup: $(ENV)/.synced
$(ENV)/.synced: uv.lock pyproject.toml envs/lf/pyproject.toml
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --user --quiet uv
	UV_PROJECT_ENVIRONMENT=$(ENV) $(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

# The whole DAG on config/config.yaml (the embedded CPU demo unless you changed it).
run: setup
	$(BIN)/snakemake --profile profiles/default

# Validate + render + LLaMA-Factory argument parsing + CPU tokenization, then the DAG without running it.
dryrun: setup
	$(BIN)/sft dryrun
	$(BIN)/snakemake --profile profiles/default -n

dag: setup
	$(BIN)/snakemake --profile profiles/default --dag

# Everything: unit, integration (real Snakemake + LLaMA-Factory + DeepSpeed on CPU), real SLURM cluster.
test: setup
	$(BIN)/pytest -ra -m "not accounting" $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -ra -m "not slow and not cluster" $(PYTEST_ARGS)

test-cluster: setup
	$(BIN)/pytest -ra -m "cluster and not accounting" $(PYTEST_ARGS)

# The profile against a cluster WITH accounting (installs MariaDB + slurmdbd; ~2 min more).
test-accounting: setup
	$(BIN)/pytest -ra -m accounting $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/run_all.py

# What CI runs before the tests: ruff (lint + format), snakefmt, snakemake --lint, the package's import contract.
# snakemake --lint must be clean except for "conda environment per rule": every job uses the one locked uv
# environment (envs/lf) on purpose.
LINT_PATHS := workflow tests bench tools
lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/snakefmt --check Snakefile workflow/rules/*.smk
	@out=$$($(BIN)/snakemake --lint 2>&1 | grep -E '^ +\* ' | grep -v 'conda environment or container'); \
	 if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "snakemake --lint: clean"
	$(BIN)/python tools/import_contract.py

# Rewrite the code in the project's format (what `make lint` checks).
format: setup
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/snakefmt Snakefile workflow/rules/*.smk
