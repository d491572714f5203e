# The lottery's everyday commands. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
AGENCIES ?= 5
# Centrals of the swarm stack (make swarm-up).
CENTRALS ?= 3
STACK ?= tp0swarm
STACK_FILE ?= docker-stack.yaml

.PHONY: all help setup build run datasets credentials test cargo-test docker-test lint fmt clean \
	docker-binaries docker-image docker-compose-up docker-compose-down docker-compose-logs \
	busybox-image validate-echo-server bench postgres-image \
	swarm-up swarm-logs swarm-down status-page prometheus-image

# Docker: `docker compose` where the plugin exists, else the standalone `docker-compose`.
DOCKER ?= docker
DOCKER_COMPOSE ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo docker-compose)
COMPOSE_FILE ?= docker-compose-dev.yaml
COMPOSE_DIR := $(patsubst %/,%,$(dir $(COMPOSE_FILE)))
COMPOSE_PROJECT ?= tp0
IMAGE_TAG ?= latest
# Containers run as the invoking user, so the winners file they write is the user's.
export HOST_UID ?= $(shell id -u)
export HOST_GID ?= $(shell id -g)
export IMAGE_TAG
COMPOSE = $(DOCKER_COMPOSE) -f $(COMPOSE_FILE) -p $(COMPOSE_PROJECT)
# The agencies the compose file runs: one dataset each.
COMPOSE_CLIENTS = $(shell grep -c '^  client[0-9]*:$$' $(COMPOSE_FILE))

# Images hold statically linked binaries (FROM scratch): built for this target with the C
# runtime linked in. BUILD_IN_DOCKER=1 builds them inside the official Rust image instead,
# for hosts without Rust or that are not x86_64 Linux (macOS).
RUST_TARGET ?= x86_64-unknown-linux-gnu
STATIC_RUSTFLAGS = -C target-feature=+crt-static -C strip=symbols
STATIC_DIR = target/$(RUST_TARGET)/release
RUST_IMAGE ?= rust:1
ifeq ($(BUILD_IN_DOCKER),1)
IN_RUST_IMAGE = $(DOCKER) run --rm --platform linux/amd64 --user $(HOST_UID):$(HOST_GID) \
	-v "$(CURDIR)":/src -w /src -e CARGO_HOME=/src/target/docker-cargo-home $(RUST_IMAGE)
DATAGEN = $(DOCKER) run --rm --platform linux/amd64 --user $(HOST_UID):$(HOST_GID) \
	-v "$(CURDIR)":/src -w /src --entrypoint /src/$(STATIC_DIR)/datagen tp0-client:$(IMAGE_TAG)
CREDENTIALS = $(DOCKER) run --rm --platform linux/amd64 --user $(HOST_UID):$(HOST_GID) \
	-v "$(CURDIR)":/src -w /src --entrypoint /src/$(STATIC_DIR)/credentials tp0-client:$(IMAGE_TAG)
else
IN_RUST_IMAGE =
DATAGEN = $(STATIC_DIR)/datagen
CREDENTIALS = $(STATIC_DIR)/credentials
endif
# A fresh set of agency keys and TLS certificates is made unless the folder holds a complete
# one (every file there and a regular file) for exactly the agencies the compose file runs.
CREDENTIAL_FILES = central/agencies.pub central/tls.crt central/tls.key ca.crt \
	$(foreach i,$(shell seq 1 $(COMPOSE_CLIENTS)),agency-$(i).key)
ENSURE_CREDENTIALS = d="$(COMPOSE_DIR)/.data/credentials"; complete=true; \
	for f in $(CREDENTIAL_FILES); do [ -f "$$d/$$f" ] || complete=false; done; \
	$$complete && [ "$$(grep -c '^[0-9]' "$$d/central/agencies.pub")" = "$(COMPOSE_CLIENTS)" ] || \
	$(CREDENTIALS) "$$d" $(COMPOSE_CLIENTS) server localhost 127.0.0.1
# Empty directories where datasets belong: what Docker leaves when a mounted file is missing.
CLEAR_DATASET_DIRS = for f in "$(COMPOSE_DIR)"/.data/dataset-*.csv; do \
	if [ -d "$$f" ]; then echo "removing $$f: a directory where a dataset belongs"; rmdir "$$f"; fi; done

all: build

## help: this list: each target and what it does (from the Makefile's `##` comments)
help:
	@awk '/^## [a-z-]+:/ { if (t) print t; sub(/^## /, ""); t = "  " $$0; next } \
		/^## / { sub(/^## */, ""); t = t " " $$0; next } \
		{ if (t) print t; t = "" }' $(firstword $(MAKEFILE_LIST))

## setup: install the system packages the tests need (as root), or print the command that does
setup:
	scripts/setup.sh

## build: release binaries in target/release (server, client, datagen, expect, bench)
build:
	$(CARGO) build --release --locked --bins

## run: the whole lottery on this machine: one central, $(AGENCIES) agencies
run:
	AGENCIES=$(AGENCIES) scripts/run-local.sh

## datasets: generate the missing ones of .data/dataset-1.csv ... (course-sized,
## deterministic); a file already there is never rewritten
datasets:
	$(CARGO) run --release --locked --quiet -p testkit --bin datagen -- --dir .data --agencies $(AGENCIES)

## test: the system packages checked (scripts/setup.sh), formatting, lints, every unit and
## integration test, then the Docker end-to-end run
test: setup
	$(MAKE) --no-print-directory lint cargo-test docker-test

## cargo-test: every unit and integration test (cargo test --workspace)
cargo-test:
	$(CARGO) test --workspace --locked

## docker-test: Part 1 in real containers (skipped, loudly, where no Docker engine answers;
## mandatory when CI=true)
docker-test:
	scripts/docker-e2e.sh

## docker-binaries: static server, client and datagen in target/$(RUST_TARGET)/release
docker-binaries:
	$(IN_RUST_IMAGE) env RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --locked \
		--target $(RUST_TARGET) -p server -p client -p testkit -p security \
		--bin server --bin client --bin datagen --bin credentials

## docker-image: the tp0-server and tp0-client images (FROM scratch, a few MB each)
docker-image: docker-binaries
	mkdir -p target/docker
	cp $(STATIC_DIR)/server $(STATIC_DIR)/client target/docker/
	$(DOCKER) build -q -f docker/server.Dockerfile -t tp0-server:$(IMAGE_TAG) target/docker
	$(DOCKER) build -q -f docker/client.Dockerfile -t tp0-client:$(IMAGE_TAG) target/docker

## credentials: a fresh set of agency keys and TLS certificates for $(AGENCIES) agencies in
## .data/credentials (private keys readable by their owner only; never committed)
credentials:
	$(CARGO) run --release --locked --quiet -p security --bin credentials -- .data/credentials $(AGENCIES) \
		server localhost 127.0.0.1

## docker-compose-up: a new lottery in containers: images, the missing datasets (datagen
## never rewrites one already there), then $(COMPOSE_FILE) up (the previous draw's winners in
## $(COMPOSE_DIR)/.data/winners are cleared)
docker-compose-up: docker-image
	@$(CLEAR_DATASET_DIRS)
	$(DATAGEN) --dir "$(COMPOSE_DIR)/.data" --agencies $(COMPOSE_CLIENTS)
	@$(ENSURE_CREDENTIALS)
	$(COMPOSE) down -t 1 --remove-orphans >/dev/null 2>&1 || true
	mkdir -p "$(COMPOSE_DIR)/.data/winners"
	rm -f "$(COMPOSE_DIR)/.data/winners/"*
	$(COMPOSE) up -d

## docker-compose-down: stop every container (1 s to exit gracefully), print each one's
## exit status (`Exited (0)`), then remove them
docker-compose-down:
	$(COMPOSE) stop -t 1
	@$(DOCKER) ps -a --filter label=com.docker.compose.project=$(COMPOSE_PROJECT) \
		--format 'table {{.Names}}\t{{.Status}}'
	$(COMPOSE) down

## status-page: where the running central's status page, metrics and readiness are (its HTTP
## listener, port 8080 on the compose network, is not published)
status-page:
	@ip=$$($(DOCKER) inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' server 2>/dev/null | cut -d' ' -f1); \
	if [ -z "$$ip" ]; then echo "status-page: no running central (make docker-compose-up first)"; exit 1; fi; \
	echo "status page: http://$$ip:8080/   (also /metrics, /status.json, /healthz, /readyz)"; \
	echo "from another machine: ssh -L 8080:$$ip:8080 THIS_HOST, then http://localhost:8080/"

## docker-compose-logs: follow the logs of every container
docker-compose-logs:
	$(COMPOSE) logs -f

## swarm-up: a new lottery on Docker Swarm: images, the swarm (made on 127.0.0.1 if none is
## active), datasets and credentials if missing, $(STACK_FILE) for $(AGENCIES) agencies and
## $(CENTRALS) centrals on PostgreSQL (agency keys and TLS on), deployed as stack $(STACK);
## returns once every central is healthy
SWARM = STACK=$(STACK) STACK_FILE=$(STACK_FILE) AGENCIES=$(AGENCIES) CENTRALS=$(CENTRALS) \
	DATAGEN="$(DATAGEN)" CREDENTIALS="$(CREDENTIALS)" DOCKER="$(DOCKER)" scripts/swarm.sh
swarm-up: docker-image postgres-image prometheus-image
	$(SWARM) up

## swarm-logs: follow the logs of every service of the stack
swarm-logs:
	$(SWARM) logs

## swarm-down: remove the stack, wait until its containers and network are gone, and leave
## the swarm if swarm-up made it
swarm-down:
	$(SWARM) down

## busybox-image: a busybox image for the netcat check: pulled, or else built from
## Debian's busybox-static package (downloaded and unpacked, not installed)
busybox-image:
	scripts/busybox-image.sh

## postgres-image: tp0-postgres:15, PostgreSQL from Debian's packages (debootstrap, nothing
## pulled; needs root the first time, about a minute and a half; then seconds)
postgres-image:
	scripts/postgres-image.sh

## prometheus-image: tp0-prometheus:2, Debian's prometheus package on the database image's
## Debian base (nothing pulled; seconds once built)
prometheus-image: postgres-image
	scripts/prometheus-image.sh

## validate-echo-server: exercise 3, netcat against the running central over testing_net
validate-echo-server: busybox-image
	scripts/validate-echo-server.sh

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

## clean: remove target/ (build output)
clean:
	$(CARGO) clean
