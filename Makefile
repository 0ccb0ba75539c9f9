# erlang_python: build, test, demo and benchmarks. See README.md.
.PHONY: all build strict test unit ct dialyzer demo bench clean

REBAR ?= rebar3
EXTRA = _build/extra
ERL_RUN = erl -noshell -pa _build/default/lib/erlang_python/ebin -pa $(EXTRA)

all: build

build:
	$(REBAR) compile

# Every test: C++ unit tests, Common Test suites, dialyzer.
test: build strict unit ct dialyzer

# src/ compiles without a single warning.
strict:
	$(REBAR) as strict compile

unit: build
	ctest --test-dir "$$(cat _build/cmake/current)" --output-on-failure

ct: build
	$(REBAR) ct

dialyzer: build
	$(REBAR) dialyzer

demo: build
	mkdir -p $(EXTRA) && erlc -o $(EXTRA) examples/demo.erl
	$(ERL_RUN) -s demo main -s init stop

bench: build
	mkdir -p $(EXTRA) && erlc -o $(EXTRA) bench/py_bench.erl
	$(ERL_RUN) -s py_bench main -s init stop

clean:
	$(REBAR) clean
	rm -rf _build/cmake priv/erlang_python_nif.so
