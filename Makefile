# The two commands of the README: `make run` and `make test`. Both set everything up first:
# `make run` only what running needs, `make test` everything the tests and linters need.
.PHONY: run test lint bench soak setup setup-run services services-run

## Herald with its dev extras (test, lint and type tools) in .venv.
setup:
	@scripts/bootstrap.sh dev

## Herald and its runtime dependencies only; an existing dev install satisfies it as well.
setup-run:
	@scripts/bootstrap.sh runtime

## RabbitMQ, PostgreSQL and the tools the tests call (installed from Debian's packages if missing).
services:
	@scripts/ensure-services.sh --for test

## RabbitMQ; PostgreSQL only when HERALD_DATABASE_URL names one on this machine.
services-run:
	@scripts/ensure-services.sh --for run

## Run Herald on embedded defaults: SQLite ledger, dev SMTP sink writing ./outbox/ (each email
## as .eml and .html, and index.html), RabbitMQ on localhost.
run: setup-run services-run
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
