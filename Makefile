# erqwest: build, demo and test entry points. `make help` lists them.
#
# The NIF is built by cargo in native/ and copied to priv/. Both rebar3
# (a pre-compile hook) and mix (a small compiler in mix.exs) call
# `make nif`, so there is one way to build it.
#
# ERQWEST_PROFILE=debug builds an unoptimised NIF (quicker to compile).

SHELL := /bin/bash
ERQWEST_PROFILE ?= release
CARGO ?= cargo
NIF_SO := priv/liberqwest_nif.so
CARGO_TARGET_DIR ?= $(CURDIR)/native/target
export CARGO_TARGET_DIR
CARGO_FLAGS := --manifest-path native/Cargo.toml $(if $(filter release,$(ERQWEST_PROFILE)),--release,)
CARGO_OUT := $(CARGO_TARGET_DIR)/$(ERQWEST_PROFILE)/liberqwest_nif.so

.PHONY: help nif deps demo test test-rust test-ct test-exunit dialyzer lint clean shell shell-erl soak sanitize bench bench-resilience

help:
	@echo "make demo   - start a local server and show erqwest requests against it"
	@echo "make test   - install what is missing, then run every test suite"
	@echo "make nif    - build the Rust NIF into priv/"
	@echo "make shell  - iex with erqwest started and a client named :default"
	@echo "make shell-erl - an Erlang shell with erqwest started"
	@echo "make soak   - long runs: random properties, full load, 1M requests or 10 min"
	@echo "make sanitize - the Rust unit tests under valgrind (and ASan with nightly)"
	@echo "make bench  - measure erqwest against wrk, curl and httpc (bench/README.md)"
	@echo "make bench-resilience - retries' cost, hedging's p99 (bench/README.md)"

# cargo decides what is stale; the copy is atomic so a running VM that has
# the old library mapped is not disturbed.
nif:
	@$(CARGO) build --quiet $(CARGO_FLAGS)
	@mkdir -p priv
	@if ! cmp -s $(CARGO_OUT) $(NIF_SO); then \
		cp $(CARGO_OUT) $(NIF_SO).tmp && mv $(NIF_SO).tmp $(NIF_SO); fi

# Installs the toolchain and the test peers on a fresh Debian machine.
deps:
	@bash .ci/install-deps

demo: deps
	@rebar3 compile
	@mkdir -p _build/demo
	@erlc -o _build/demo demo/erqwest_demo.erl test/erqwest_test_server.erl
	@erl -noshell -pa _build/default/lib/*/ebin -pa _build/demo -eval 'erqwest_demo:main()' -s init stop

test: deps
	@bash .ci/test

test-rust:
	$(CARGO) test --quiet --manifest-path native/Cargo.toml --release

test-ct: nif
	rebar3 ct

test-exunit: nif
	mix test

dialyzer:
	rebar3 dialyzer

lint:
	$(CARGO) fmt --manifest-path native/Cargo.toml --check
	$(CARGO) clippy --quiet --manifest-path native/Cargo.toml --release -- -D warnings

# Not part of `make test`: it takes minutes and measures, never asserts.
bench:
	@bash bench/run

bench-resilience:
	@bash bench/resilience/run.sh

# iex reads .iex.exs, which registers the :default client.
shell: nif
	iex -S mix

shell-erl: nif
	rebar3 shell

clean:
	rm -rf _build priv/*.so native/target

# Long runs (bench/soak/run.sh): SOAK_REQUESTS, SOAK_SECONDS, SOAK_INTERVAL,
# SOAK_WORKERS, SOAK_PROPTESTS; SOAK_ONLY=1 for the soak alone.
soak: nif
	@bash bench/soak/run.sh

sanitize:
	@bash bench/sanitize/run.sh
