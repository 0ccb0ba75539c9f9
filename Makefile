# erlang_python: build, test, demo and benchmarks. See README.md.
.PHONY: all build strict test unit ct elixir dialyzer edoc other-pythons demo bench sanitize clean

REBAR ?= rebar3
EXTRA = _build/extra
ERL_RUN = erl -noshell -pa _build/default/lib/erlang_python/ebin -pa $(EXTRA)

all: build

build:
	$(REBAR) compile

# Every test: C++ unit tests, Common Test suites, ExUnit tests from Elixir,
# dialyzer and edoc, then the unit tests and suites again against every
# other Python found.
test: build strict unit ct elixir dialyzer edoc other-pythons

# src/ compiles without a single warning.
strict:
	$(REBAR) as strict compile

unit: build
	ctest --test-dir "$$(cat _build/cmake/current)" --output-on-failure

ct: build
	$(REBAR) ct

# Elixir (Debian's elixir, from the set-up command) using the application,
# and a Mix project depending on this checkout by path.
elixir: build
	elixir -pa _build/default/lib/erlang_python/ebin test/elixir/erlang_python_test.exs

dialyzer: build
	$(REBAR) dialyzer

edoc: build
	$(REBAR) edoc

# Each Python gets its own CMake tree; priv/ is rebuilt for the default
# Python at the end so the working tree is left as `make build` makes it.
other-pythons: build
	@set -e; for py in $$(sh c_src/other_pythons.sh); do \
	    echo "=== suites against $$py"; \
	    ERLANG_PYTHON=$$py $(REBAR) compile; \
	    ctest --test-dir "$$(cat _build/cmake/current)" --output-on-failure; \
	    ERLANG_PYTHON=$$py $(REBAR) ct; \
	done
	$(REBAR) compile

demo: build
	mkdir -p $(EXTRA) && erlc -o $(EXTRA) examples/demo.erl examples/ml_example.erl examples/dist_example.erl
	$(ERL_RUN) -s demo main -s init stop
	@echo; echo "From Elixir (examples/elixir_demo.exs):"
	elixir -pa _build/default/lib/erlang_python/ebin examples/elixir_demo.exs

bench: build
	mkdir -p $(EXTRA) && erlc -o $(EXTRA) bench/py_bench.erl bench/output_cost.erl
	$(ERL_RUN) -s py_bench main -s output_cost run -s init stop

# Optional: the suites against a NIF built with ASan and UBSan (slower; not
# part of `make test`). Any report stops the run; logs go to _build/sanitize/.
SAN_RT = $(shell gcc -print-file-name=libasan.so):$(shell gcc -print-file-name=libubsan.so)
sanitize:
	mkdir -p _build/sanitize
	ERLANG_PYTHON_SANITIZE=address,undefined \
	LD_PRELOAD="$(SAN_RT)" \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:log_path=$(CURDIR)/_build/sanitize/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/_build/sanitize/ubsan \
	$(REBAR) ct
	@if ls _build/sanitize/* >/dev/null 2>&1; then echo "sanitizer reports in _build/sanitize/"; exit 1; fi
	$(REBAR) compile

clean:
	$(REBAR) clean
	rm -rf _build/cmake priv/erlang_python_nif.so
