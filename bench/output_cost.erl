%% What print routing (spec §13) costs calls that print nothing: the
%% median of 7 rounds for each path, to compare builds before and after.
%% `make bench' runs it after py_bench; run it alone against any build with
%% `erl -noshell -pa <that build's ebin> -pa _build/extra -s output_cost main -s init stop'.
-module(output_cost).
-export([main/0, run/0]).

-define(ROUNDS, 7).
-define(CALLS, 50000).

-spec main() -> ok.
main() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    run().

-spec run() -> ok.
run() ->
    Ctx = py:context(1),
    Cases = [{"py:call(Ctx, math, sqrt, [16])", fun() -> {ok, 4.0} = py:call(Ctx, math, sqrt, [16]) end},
             {"py:eval(Ctx, <<\"1+1\">>)", fun() -> {ok, 2} = py:eval(Ctx, <<"1+1">>) end},
             {"py:await(py:spawn_call(Ctx, math, sqrt, [16]))",
              fun() -> {ok, 4.0} = py:await(py:spawn_call(Ctx, math, sqrt, [16])) end}],
    io:format("~nCalls that print nothing (median of ~b rounds of ~b calls, goal: no measurable change)~n",
              [?ROUNDS, ?CALLS]),
    io:format("~-52s ~12s ~12s~n", ["case", "us/call", "spread"]),
    [begin
         repeat(Fun, 2000),
         Times = lists:sort([round_us(Fun) || _ <- lists:seq(1, ?ROUNDS)]),
         Median = lists:nth((?ROUNDS + 1) div 2, Times),
         io:format("~-52s ~12.2f ~5.2f-~.2f~n", [Label, Median, hd(Times), lists:last(Times)])
     end || {Label, Fun} <- Cases],
    ok.

round_us(Fun) ->
    {Us, ok} = timer:tc(fun() -> repeat(Fun, ?CALLS) end),
    Us / ?CALLS.

repeat(_Fun, 0) -> ok;
repeat(Fun, N) -> Fun(), repeat(Fun, N - 1).
