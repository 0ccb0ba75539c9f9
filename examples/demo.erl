%% `make demo`: starts erlang_python and shows it working.
-module(demo).
-export([main/0]).

main() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    io:format("Python ~s~n~n", [Version]),

    show("py:call(math, sqrt, [16])", py:call(math, sqrt, [16])),
    show("py:eval(<<\"2 ** 100\">>)", py:eval(<<"2 ** 100">>)),
    show("py:call(json, dumps, [#{langs => [erlang, python]}])",
         py:call(json, dumps, [#{langs => [erlang, python]}])),

    %% Each process has its own namespace.
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"greeting = 'hello from process A'">>),
    Self = self(),
    spawn(fun() -> Self ! {b, py:eval(Ctx, <<"greeting">>)} end),
    show("process A: greeting", py:eval(Ctx, <<"greeting">>)),
    receive {b, Other} -> show("process B: greeting", Other) end,

    %% Python exceptions are values.
    show("py:eval(<<\"1/0\">>)", py:eval(<<"1/0">>)),

    %% A timeout interrupts the Python code; the context keeps working.
    show("busy loop with a 100 ms timeout",
         py:eval(Ctx, <<"exec('while True: pass')">>, #{}, #{timeout => 100})),
    show("the same context afterwards", py:eval(Ctx, <<"6 * 7">>)),

    %% Calls that do not wait, and a generator streamed item by item.
    Ref = py:spawn_call(math, factorial, [25]),
    show("py:spawn_call(math, factorial, [25]), then py:await", py:await(Ref)),
    ok = py:exec(<<"def tokens(text):\n    for word in text.split():\n        yield word.upper()\n">>),
    {ok, Stream} = py:stream_start('__main__', tokens, [<<"streamed one word at a time">>], #{window => 2}),
    show("a stream with window => 2, acknowledged as it goes", take_stream(Stream, [])),

    %% Coroutines run on the asyncio event loop, concurrently.
    ok = py:exec(<<"import asyncio\nasync def nap(i):\n    await asyncio.sleep(0.1)\n    return i\n">>),
    {Us, Naps} = timer:tc(fun() ->
                                  Refs = [py_event_loop:create_task('__main__', nap, [I]) || I <- lists:seq(1, 1000)],
                                  [element(2, py_event_loop:await(R)) || R <- Refs]
                          end),
    show(io_lib:format("1000 tasks sleeping 100 ms: done in ~b ms", [Us div 1000]), lists:sum(Naps)),

    %% A scikit-learn model served by Erlang processes (examples/ml_example.erl).
    io:format("~nA pickled scikit-learn model, one env per serving process:~n"),
    _ = ml_example:main(),

    %% A pool over two nodes (examples/dist_example.erl).
    io:format("~nContexts on this node and on a peer node, used alike:~n"),
    _ = dist_example:main(),
    ok.

take_stream(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, Word}} -> ok = py:stream_ack(Ref), take_stream(Ref, [Word | Acc]);
        {py_stream, Ref, done} -> lists:reverse(Acc)
    end.

show(Label, Value) ->
    io:format("~-55s ~0p~n", [Label, Value]).
