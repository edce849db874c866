# erqwest: build, demo and test entry points. `make help` lists them.
#
# The NIF reaches priv/ one way: rebar3 (a pre-compile hook) and mix (a
# small compiler in mix.exs) both call `make nif`, which runs native/nif.sh:
# it downloads the precompiled NIF listed in native/checksums.sha256 and
# checks its SHA-256, or builds it with cargo (guides/installing.md,
# "Adding it to a project").
#
# Every other target here is for working on erqwest itself and builds from
# source (ERQWEST_BUILD=1), so tests never wait for a download and always
# load the code in this tree.
#
# ERQWEST_PROFILE=debug builds an unoptimised NIF (quicker to compile).

SHELL := /bin/bash
ERQWEST_PROFILE ?= release
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(CURDIR)/native/target
export CARGO_TARGET_DIR ERQWEST_PROFILE CARGO

.PHONY: help nif release-nif docs test-docs deps demo test test-rust test-ct test-exunit test-install dialyzer lint clean shell shell-erl soak sanitize bench bench-events bench-pages bench-json bench-resilience bench-req bench-everyday

DEV_TARGETS := demo test test-ct test-exunit test-install docs test-docs shell shell-erl soak sanitize bench bench-events bench-pages bench-json bench-resilience bench-req bench-everyday
$(DEV_TARGETS): export ERQWEST_BUILD ?= 1

help:
	@echo "make demo   - start a local server and show erqwest requests against it"
	@echo "make test   - install what is missing, then run every test suite"
	@echo "make nif    - put the NIF into priv/: downloaded and verified, or built with cargo"
	@echo "make release-nif - build the host's NIF artifact into _build/nif-release and list its checksum"
	@echo "make docs   - the HTML docs (ExDoc, both languages, guides) in doc/; needs ../shared/peers"
	@echo "make test-docs - open the built docs in headless Chromium and check them"
	@echo "make test-install - install from fresh clones against a local artifact server"
	@echo "make shell  - iex with erqwest started and a client named :default"
	@echo "make shell-erl - an Erlang shell with erqwest started"
	@echo "make soak   - long runs: random properties, full load, 1M requests or 10 min"
	@echo "make sanitize - the Rust unit tests under valgrind (and ASan with nightly)"
	@echo "make bench  - measure erqwest against wrk, curl and httpc, then the everyday section (bench/README.md)"
	@echo "make bench-events - event streams against read/2 + splitting in Erlang"
	@echo "make bench-pages - a 100-page listing: erqwest_pages with prefetch vs a hand loop"
	@echo "make bench-json - JSON bodies decoded and encoded, against jiffy (bench/README.md)"
	@echo "make bench-req - Req on erqwest against Req on Finch (bench/README.md)"
	@echo "make bench-everyday - JSON requests: erqwest's Elixir API against Req and Finch+Jason (bench/README.md)"
	@echo "make bench-resilience - retries' cost, hedging's p99 (bench/README.md)"

# native/nif.sh decides between the download and cargo; either way the
# copy into priv/ is atomic, so a running VM that has the old library
# mapped is not disturbed.
nif:
	@bash native/nif.sh install

# ERQWEST_TARGET=<triple> cross-compiles (guides/installing.md: "Publishing a release").
RELEASE_DIR ?= $(CURDIR)/_build/nif-release
release-nif:
	@bash native/nif.sh release $(RELEASE_DIR)

DOC_DIR ?= $(CURDIR)/doc
docs: nif
	@bash scripts/docs.sh $(DOC_DIR)

# Not part of `make test`: Chromium is a large install and the check takes
# a minute or two. .ci/run runs it after `make test`.
test-docs:
	@bash test/docs/check.sh

# Installs the toolchain and the test peers on a fresh Debian machine.
deps:
	@bash .ci/install-deps

demo: deps
	@rebar3 compile
	@mkdir -p _build/demo
	@erlc -o _build/demo demo/erqwest_demo.erl test/erqwest_test_server.erl test/erqwest_test_certs.erl test/erqwest_test_peers.erl
	@erl -noshell -pa _build/default/lib/*/ebin -pa _build/demo $(if $(PEERS_LIB),-pa $(PEERS_LIB)/telemetry/ebin) -eval 'erqwest_demo:main()' -s init stop

test: deps
	@bash .ci/test

test-rust:
	$(CARGO) test --quiet --manifest-path native/Cargo.toml --release

test-ct: nif
	rebar3 ct

# With the peers (scripts/peers.sh) when ../shared/peers is there, as in
# .ci/test, so that the Req and Tesla adapter suites run.
test-exunit: nif
	PEERS_LIB=$$(bash scripts/peers.sh) mix test

# Installs from fresh clones against a local artifact server (test/install).
test-install:
	@bash test/install/run.sh

dialyzer:
	rebar3 dialyzer

# ../shared/tools/rust-cycles (beside the checkout, as in CI): no circle
# between the modules of native/src.
RUST_CYCLES ?= $(CURDIR)/../shared/tools/rust-cycles
lint:
	$(CARGO) fmt --manifest-path native/Cargo.toml --check
	$(CARGO) clippy --quiet --manifest-path native/Cargo.toml --release -- -D warnings
	@if [ -x "$(RUST_CYCLES)" ]; then "$(RUST_CYCLES)" native/src; \
	else echo "lint: no $(RUST_CYCLES): the module-circle check is skipped"; fi

# Not part of `make test`: it takes minutes and measures, never asserts.
bench:
	@bash bench/run

# Event streams against read/2 + splitting in Erlang (bench/README.md).
bench-events: nif
	@rebar3 compile >/dev/null
	@mkdir -p _build/bench-events
	@erlc -o _build/bench-events bench/erqwest_events_bench.erl
	@# With mix installed, Elixir and the mix build go last on the code path
	@# (rebar3's erqwest modules stay first), for the Erqwest.Events rows.
	@ex=""; if command -v mix >/dev/null && MIX_ENV=dev mix compile >/dev/null; then \
		ex="-pz $$(elixir -e 'IO.write(:code.lib_dir(:elixir))')/ebin -pz _build/mix/dev/lib/erqwest/ebin"; fi; \
	erl -noshell +sbwt none +sbwtdcpu none +sbwtdio none -pa _build/default/lib/*/ebin \
		-pa _build/bench-events $$ex -eval 'erqwest_events_bench:main()' -s init stop

# About a minute: erqwest_pages against a hand-written loop (bench/README.md).
bench-pages:
	@rebar3 compile
	@mkdir -p _build/bench-pages
	@erlc -o _build/bench-pages bench/bench_pages.erl test/erqwest_test_server.erl
	@erl -noshell -pa _build/default/lib/*/ebin -pa _build/bench-pages -eval 'bench_pages:main()' -s init stop

bench-json:
	@bash bench/json

# About a minute: Req on erqwest against Req on Finch (bench/README.md).
bench-req:
	@bash bench/req
bench-resilience:
	@bash bench/resilience/run.sh

# About 6 minutes: everyday JSON requests, erqwest (Elixir API, default
# client) against Req and Finch + Jason, each in its own VM (bench/README.md).
bench-everyday:
	@bash bench/everyday

# iex reads .iex.exs, which registers the :default client.
shell: nif
	iex -S mix

shell-erl: nif
	rebar3 shell

clean:
	rm -rf _build priv/*.so priv/*.stamp native/target doc

# Long runs (bench/soak/run.sh): SOAK_REQUESTS, SOAK_SECONDS, SOAK_INTERVAL,
# SOAK_WORKERS, SOAK_PROPTESTS; SOAK_ONLY=1 for the soak alone.
soak: nif
	@bash bench/soak/run.sh

sanitize:
	@bash bench/sanitize/run.sh
