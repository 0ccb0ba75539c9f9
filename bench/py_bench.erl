%% `make bench`: per-call cost of the core paths. Prints µs/call and calls/s.
-module(py_bench).
-export([main/0, run/0]).

-define(WARMUP, 2000).

main() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    run().

run() ->
    {ok, Version} = py:version(),
    io:format("erlang_python benchmarks~nPython ~s~nOTP ~s, ~b schedulers, ~b pool contexts (~p)~n~n",
              [Version, erlang:system_info(otp_release), erlang:system_info(schedulers),
               py_context_pool:size(), application:get_env(erlang_python, context_mode, worker)]),
    io:format("~-52s ~12s ~14s~n", ["case", "us/call", "calls/s"]),
    Ctx = py:context(1),
    sequential("py:call(math, sqrt, [16]), 1 process", 200000,
               fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end),
    concurrent("py:call(math, sqrt, [16]), 100 processes", 100, 3000,
               fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end),
    sequential("py:eval(Ctx, <<\"1+1\">>)", 200000,
               fun() -> {ok, 2} = py:eval(Ctx, <<"1+1">>) end),
    sequential("py:exec(Ctx, <<\"x = 1\">>)", 200000,
               fun() -> ok = py:exec(Ctx, <<"x = 1">>) end),
    fresh_process("first call in a fresh process (env creation)", 20000),
    List = lists:seq(1, 1000),
    Map = maps:from_list([{integer_to_binary(I), I} || I <- List]),
    ok = py:exec(Ctx, <<"big_list = list(range(1, 1001))\nbig_map = {str(i): i for i in range(1, 1001)}\n"
                        "def take(x):\n    return None\n">>),
    sequential("1000-element list, Erlang -> Python", 20000,
               fun() -> {ok, none} = py:call(Ctx, '__main__', take, [List]) end),
    sequential("1000-element list, Python -> Erlang", 20000,
               fun() -> {ok, [_ | _]} = py:eval(Ctx, <<"big_list">>) end),
    sequential("1000-key map, Erlang -> Python", 10000,
               fun() -> {ok, none} = py:call(Ctx, '__main__', take, [Map]) end),
    sequential("1000-key map, Python -> Erlang", 10000,
               fun() -> {ok, #{}} = py:eval(Ctx, <<"big_map">>) end),
    ok.

sequential(Label, N, Fun) ->
    repeat(Fun, ?WARMUP),
    {Us, ok} = timer:tc(fun() -> repeat(Fun, N) end),
    report(Label, N, Us).

concurrent(Label, Procs, PerProc, Fun) ->
    Run = fun(Count) ->
              Parent = self(),
              Pids = [spawn_link(fun() -> repeat(Fun, Count), Parent ! {done, self()} end)
                      || _ <- lists:seq(1, Procs)],
              [receive {done, P} -> ok end || P <- Pids],
              ok
          end,
    Run(?WARMUP div Procs + 1),
    {Us, ok} = timer:tc(fun() -> Run(PerProc) end),
    report(Label, Procs * PerProc, Us).

fresh_process(Label, N) ->
    Parent = self(),
    One = fun() ->
              spawn(fun() -> {ok, 4.0} = py:call(math, sqrt, [16]), Parent ! done end),
              receive done -> ok end
          end,
    repeat(One, ?WARMUP),
    {Us, ok} = timer:tc(fun() -> repeat(One, N) end),
    report(Label, N, Us).

repeat(_Fun, 0) -> ok;
repeat(Fun, N) -> Fun(), repeat(Fun, N - 1).

report(Label, N, Us) ->
    io:format("~-52s ~12.2f ~14b~n", [Label, Us / N, round(N * 1.0e6 / max(Us, 1))]).
