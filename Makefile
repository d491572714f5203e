# The lottery's everyday commands. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
AGENCIES ?= 5

.PHONY: all build run datasets test lint fmt bench clean

all: build

## build: release binaries in target/release (server, client, datagen)
build:
	$(CARGO) build --release --locked --bins

## run: the whole lottery on this machine: one central, $(AGENCIES) agencies
run:
	AGENCIES=$(AGENCIES) scripts/run-local.sh

## datasets: generate .data/dataset-1.csv ... (course-sized, deterministic)
datasets:
	$(CARGO) run --release --locked --quiet -p testkit --bin datagen -- --dir .data --agencies $(AGENCIES)

## test: formatting, lints, then every unit and integration test
test: lint
	$(CARGO) test --workspace --locked

## lint: rustfmt and clippy, warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## bench: the end-to-end benchmark: real processes on 127.0.0.1, table + target/bench/results.json
##        (BENCH_QUICK=1 for one run of each fast scenario; see crates/bench/src/settings.rs)
bench: build
	target/release/bench

## fmt: format the code
fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
