# erlang_python: build, test, demo and benchmarks. See README.md.
.PHONY: all build strict test unit ct dialyzer edoc other-pythons demo bench clean

REBAR ?= rebar3
EXTRA = _build/extra
ERL_RUN = erl -noshell -pa _build/default/lib/erlang_python/ebin -pa $(EXTRA)

all: build

build:
	$(REBAR) compile

# Every test: C++ unit tests, Common Test suites, dialyzer and edoc, then
# the unit tests and suites again against every other Python found.
test: build strict unit ct dialyzer edoc other-pythons

# src/ compiles without a single warning.
strict:
	$(REBAR) as strict compile

unit: build
	ctest --test-dir "$$(cat _build/cmake/current)" --output-on-failure

ct: build
	$(REBAR) ct

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
	mkdir -p $(EXTRA) && erlc -o $(EXTRA) examples/demo.erl
	$(ERL_RUN) -s demo main -s init stop

bench: build
	mkdir -p $(EXTRA) && erlc -o $(EXTRA) bench/py_bench.erl
	$(ERL_RUN) -s py_bench main -s init stop

clean:
	$(REBAR) clean
	rm -rf _build/cmake priv/erlang_python_nif.so
