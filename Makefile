# Thin wrappers around scripts/ (the scripts are the source of truth; CI runs .ci/run).
.PHONY: bootstrap test demo lint typecheck bench dev-up dev-down dev-status ci

VENV ?= .venv

bootstrap:
	bash scripts/bootstrap.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

lint:
	bash scripts/lint.sh

typecheck:
	$(VENV)/bin/mypy

bench:
	bash scripts/bench.sh

dev-up:
	bash scripts/dev.sh up

dev-down:
	bash scripts/dev.sh down

dev-status:
	bash scripts/dev.sh status

ci:
	bash .ci/run
