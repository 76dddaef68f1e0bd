# The two commands of the README: `make run` and `make test`. Both set everything up first.
.PHONY: run test lint bench soak setup services

setup:
	@scripts/bootstrap.sh

services:
	@scripts/ensure-services.sh

## Run Herald on embedded defaults: SQLite ledger, dev SMTP sink writing ./outbox/*.eml,
## RabbitMQ on localhost.
run: setup services
	.venv/bin/herald run --dev-smtp

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

## The whole suite: lint, types, unit and integration tests against the real services, then
## the fault scenarios (tests/faults: real processes, private RabbitMQ nodes), several at once.
test: setup services lint
	.venv/bin/pytest --ignore=tests/faults
	.venv/bin/pytest tests/faults -n 4

bench: setup services
	.venv/bin/python -m pip install -q -e ".[dev,bench]"
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/python bench/run.py --profile

## The soak (bench/soak.py, FAULTS.md row 40): 10 minutes of load and random faults on a private
## RabbitMQ node, then PASS (exit 0) or FAIL (exit 1). Not part of `make test`;
## `make soak SOAK_ARGS=--quick` is a 90-second check, SOAK_ARGS takes any bench/soak.py flag.
soak: setup services
	.venv/bin/python bench/soak.py $(SOAK_ARGS)
