%% Spec §13: contexts on other nodes, on plain distribution. Three nodes
%% (this one and two peers), calls in both directions, envs that live as
%% long as the calling process, a node killed mid-call, 1000 remote callers
%% churning, handles on the wrong node.
-module(py_dist_SUITE).
-include_lib("common_test/include/ct.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [calls_on_a_remote_context, both_directions_three_nodes, env_lives_as_long_as_the_caller,
     remote_errors_and_timeouts, remote_spawn_calls, node_killed_mid_call, remote_callers_churn, handle_on_the_wrong_node,
     remote_streams, remote_stream_cancel_and_owners, remote_stream_owners_on_any_node, remote_casts_interrupts_info, remote_explicit_envs,
     nodedown_reaches_handle_info, remote_output_of_async_calls, pool_over_two_nodes_example,
     remote_contexts_in_every_mode, async_answers_flow_during_a_call, owner_hears_when_the_callers_node_goes].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    WasAlive = is_alive(),
    WasAlive orelse begin
                        _ = os:cmd("epmd -daemon"),
                        {ok, _} = net_kernel:start([list_to_atom("py_dist_" ++ os:getpid()), shortnames])
                    end,
    [{was_alive, WasAlive} | Config].

end_per_suite(Config) ->
    ?config(was_alive, Config) orelse net_kernel:stop(),
    py_test_util:stop().

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, Config) ->
    [catch peer:stop(P) || P <- proplists:get_value(peers, Config, [])],
    py_test_util:flush(),
    ok.

%% A peer node with our code, erlang_python started.
peer() ->
    Paths = lists:append([["-pa", filename:dirname(code:which(M))] || M <- [py, ?MODULE]]),
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(), args => Paths, wait_boot => ?PATIENCE}),
    unlink(Peer),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python], ?PATIENCE),
    {Peer, Node}.

%% On Node, in a fresh process there (so a fresh caller).
on(Node, Fun) ->
    erpc:call(Node, Fun, ?PATIENCE).

remote_envs(Node) ->
    {ok, #{envs_alive := N}} = erpc:call(Node, py_nif, runtime_info, []),
    N.

%% ---------------------------------------------------------------------------

calls_on_a_remote_context(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    B = node(Ctx),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py:exec(Ctx, <<"def twice(x):\n    return 2 * x\nmine = 'caller A'">>),
    {ok, 42} = py:call(Ctx, '__main__', twice, [21]),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {ok, 6} = py:eval(Ctx, <<"x * y">>, #{x => 2, y => 3}),
    {ok, <<"caller A">>} = py:eval(Ctx, <<"mine">>),
    %% print output on B comes back to this caller's group leader
    {ok, <<"printed on B\n">>} = py_test_util:with_group_leader(fun() -> py:exec(Ctx, <<"print('printed on B')">>) end),
    %% another process here has its own env there
    Self = self(),
    spawn(fun() -> Self ! {other, py:eval(Ctx, <<"mine">>)} end),
    receive {other, {error, {'NameError', _}}} -> ok end,
    peer:stop(Peer).

%% Three nodes: A (here) calls B's context, B calls C's and A's.
both_directions_three_nodes(_Config) ->
    {PeerB, B} = peer(),
    {PeerC, C} = peer(),
    CtxA = py:context(1),
    CtxB = erpc:call(B, py, context, [1]),
    CtxC = erpc:call(C, py, context, [1]),
    {ok, B1} = py:eval(CtxB, <<"__import__('erlang').self()">>),
    B = node(B1),  % the proxy on B makes the call
    {ok, {ok, 7}} = {ok, on(B, fun() -> py:eval(CtxC, <<"3 + 4">>) end)},
    {ok, 9} = on(B, fun() -> py:eval(CtxA, <<"4 + 5">>) end),
    {ok, 11} = on(C, fun() -> py:eval(CtxB, <<"5 + 6">>) end),
    [peer:stop(P) || P <- [PeerB, PeerC]],
    ok.

env_lives_as_long_as_the_caller(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    {ok, _} = py:eval(Ctx, <<"0">>),  % this process's env there, made
    Before = remote_envs(B),
    1 = erpc:call(B, py_remote, proxies, []),  % this process's
    Self = self(),
    Caller = spawn(fun() ->
                           ok = py:exec(Ctx, <<"data = list(range(1000))">>),
                           Self ! made,
                           receive stop -> ok end
                   end),
    receive made -> ok end,
    true = remote_envs(B) =:= Before + 1,
    2 = erpc:call(B, py_remote, proxies, []),
    Caller ! stop,
    true = py_test_util:wait_until(fun() ->
                                           remote_envs(B) =:= Before andalso
                                               erpc:call(B, py_remote, proxies, []) =:= 1
                                   end),
    peer:stop(Peer).

remote_errors_and_timeouts(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    {error, {'ZeroDivisionError', <<"division by zero">>}} = py:eval(Ctx, <<"1/0">>),
    {error, timeout} = py:eval(Ctx, <<"exec('while True: pass')">>, #{}, #{timeout => 50}),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    {error, {badarg, timeout}} = py:eval(Ctx, <<"1">>, #{}, #{timeout => -1}),
    %% a remote pid that is not a context
    NotCtx = erpc:call(B, erlang, whereis, [init]),
    {error, context_not_running} = py:eval(NotCtx, <<"1">>),
    %% a node without the application
    {PeerBare, Bare} = bare_peer(),
    BareInit = erpc:call(Bare, erlang, whereis, [init]),
    {error, {not_started, {erlang_python, Bare}}} = py:eval(BareInit, <<"1">>),
    Refused = py:spawn_call(BareInit, math, sqrt, [4]),
    {error, {not_started, {erlang_python, Bare}}} = py:await(Refused),
    {messages, []} = process_info(self(), messages),
    [peer:stop(P) || P <- [Peer, PeerBare]],
    ok.

remote_spawn_calls(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    Refs = [py:spawn_call(Ctx, math, factorial, [I]) || I <- lists:seq(1, 100)],
    Expected = [{ok, F} || F <- factorials(100)],  % 100!, 99!, ... 1!
    Expected = [py:await(R) || R <- lists:reverse(Refs)],
    {error, {'ValueError', _}} = py:await(py:spawn_call(Ctx, math, sqrt, [-1])),
    %% its traceback, made there, is kept here as a local await keeps it
    {_, _} = binary:match(py:last_traceback(), <<"ValueError">>),
    {error, _} = py:await(py:spawn_call(Ctx, 42, sqrt, [1])),  % refused there
    %% taken as a message, as a gen_server's handle_info would
    Msg = py:spawn_call(Ctx, math, sqrt, [49]),
    receive {py_response, Msg, {ok, 7.0}} -> ok end,
    %% only the caller awaits
    Mine = py:spawn_call(Ctx, math, sqrt, [64]),
    Self = self(),
    spawn(fun() -> Self ! {other, py:await(Mine, 0)} end),
    receive {other, {error, not_owner}} -> ok end,
    {ok, 8.0} = py:await(Mine),
    %% B's py_remote restarts (its proxies with it): the next calls get a
    %% new proxy
    Old = erpc:call(B, erlang, whereis, [py_remote]),
    ok = erpc:call(B, supervisor, terminate_child, [erlang_python_sup, py_remote]),
    {ok, _} = erpc:call(B, supervisor, restart_child, [erlang_python_sup, py_remote]),
    true = Old =/= erpc:call(B, erlang, whereis, [py_remote]),
    {ok, 3.0} = py:await(py:spawn_call(Ctx, math, sqrt, [9])),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    %% one still running when the node goes
    ok = py:exec(Ctx, <<"import time">>),
    Slow = py:spawn_call(Ctx, time, sleep, [600]),
    {error, timeout} = py:await(Slow, 0),
    peer:stop(Peer),
    {error, {nodedown, B}} = py:await(Slow, ?PATIENCE),
    ok.

factorials(N) ->
    lists:foldl(fun(I, [Prev | _] = Acc) -> [Prev * I | Acc] end, [1], lists:seq(2, N)).

bare_peer() ->
    Paths = lists:append([["-pa", filename:dirname(code:which(M))] || M <- [py, ?MODULE]]),
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(), args => Paths, wait_boot => ?PATIENCE}),
    unlink(Peer),
    {Peer, Node}.

%% Callers waiting on a node that dies get an answer; a node whose callers
%% die releases their envs.
node_killed_mid_call(Config) ->
    %% here -> B, B killed while the call runs
    {PeerB, B} = peer(),
    CtxB = erpc:call(B, py, context, [1]),
    Self = self(),
    Waiter = spawn(fun() -> Self ! {answer, py:eval(CtxB, <<"__import__('time').sleep(600)">>)} end),
    true = py_test_util:wait_until(fun() -> erpc:call(B, py_remote, proxies, []) =:= 1 end),
    peer:stop(PeerB),
    receive {answer, Answer} -> {error, {nodedown, B}} = Answer end,
    false = is_process_alive(Waiter),
    %% C -> here, C killed while its call runs here: the env goes
    {PeerC, C} = peer(),
    CtxA = py:context(1),
    Gate = py_test_util:gate(Config, CtxA),  % (makes this process's env)
    Before = remote_envs(node()),
    erpc:cast(C, fun() -> py:eval(CtxA, <<"__import__('test_gate').wait(g)">>, #{g => Gate}) end),
    true = py_test_util:wait_until(fun() -> remote_envs(node()) =:= Before + 1 end),
    peer:stop(PeerC),
    ok = py_test_util:open_gate(Gate),
    true = py_test_util:wait_until(fun() -> remote_envs(node()) =:= Before andalso py_remote:proxies() =:= 0 end),
    ok.

remote_callers_churn(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    Before = remote_envs(B),
    Self = self(),
    Pids = [spawn(fun() -> Self ! {self(), py:eval(Ctx, <<"i * i">>, #{i => I})} end) || I <- lists:seq(1, 1000)],
    Results = [receive {P, R} -> R end || P <- Pids],
    Expected = [{ok, I * I} || I <- lists:seq(1, 1000)],
    Expected = Results,
    true = py_test_util:wait_until(fun() ->
                                           remote_envs(B) =:= Before andalso
                                               erpc:call(B, py_remote, proxies, []) =:= 0
                                   end),
    peer:stop(Peer).

%% A handle made on B names an object there: used here it is an error, not
%% a crash; handed back to B's context it still works.
handle_on_the_wrong_node(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    {ok, Handle} = py:eval(Ctx, <<"object()">>),
    true = is_reference(Handle),
    {error, _} = py:getattr(Handle, '__class__'),
    {error, _} = py:to_term(Handle),
    peer:stop(Peer).

%% ---------------------------------------------------------------------------
%% Streams, casts, interrupts and explicit envs on another node

remote_streams(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    ok = py:exec(Ctx, <<"def count(n):\n    for i in range(n):\n        yield i\n"
                        "def broken():\n    yield 1\n    raise ValueError('midway')\n">>),
    {ok, [0, 1, 2, 3, 4]} = py:stream(Ctx, '__main__', count, [5], #{}),
    {error, {'ValueError', <<"midway">>}} = py:stream(Ctx, '__main__', broken, [], #{}),
    %% with a window: at most 2 unacknowledged, acks go back to B
    {ok, Ref} = py:stream_start('__main__', count, [6], #{ctx => Ctx, window => 2}),
    B = node(Ref),
    [0, 1] = take_data(Ref, 2),
    %% the generator waits at its window: B's context serves other calls
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    {messages, []} = process_info(self(), messages),
    ok = py:stream_ack(Ref, 2),
    [2, 3] = take_data(Ref, 2),
    ok = py:stream_ack(Ref, 2),
    [4, 5] = take_data(Ref, 2),
    ok = py:stream_ack(Ref, 2),
    receive {py_stream, Ref, done} -> ok end,
    ok = py:stream_ack(Ref, 1),     % after the end: harmless
    ok = py:stream_cancel(Ref),     % likewise
    {error, {badarg, count}} = py:stream_ack(Ref, 0),
    %% an option B refuses
    {error, {badarg, {option, bogus}}} = py:stream_start('__main__', count, [1], #{ctx => Ctx, bogus => 1}),
    {messages, []} = process_info(self(), messages),
    peer:stop(Peer).

take_data(_Ref, 0) ->
    [];
take_data(Ref, N) ->
    receive {py_stream, Ref, {data, Item}} -> [Item | take_data(Ref, N - 1)] end.

%% Cancel closes the generator on B (its finally runs) and nothing of the
%% stream comes after; an owner other than the caller gets the messages,
%% and its exit closes the stream.
remote_stream_cancel_and_owners(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    %% every process streams from its own env there: each defines it
    Define = fun() ->
                     ok = py:exec(Ctx, <<"import sys, types\n"
                                         "state = sys.modules.setdefault('dist_streams', types.ModuleType('dist_streams'))\n"
                                         "state.__dict__.setdefault('closed', [])\n"
                                         "def endless(tag):\n    try:\n        i = 0\n        while True:\n"
                                         "            yield i\n            i += 1\n    finally:\n        state.closed.append(tag)\n">>)
             end,
    Closed = fun() -> py:eval(Ctx, <<"__import__('dist_streams').closed">>) end,
    Define(),
    {ok, Ref} = py:stream_start('__main__', endless, [<<"free">>], #{ctx => Ctx}),
    [0, 1, 2] = take_data(Ref, 3),
    ok = py:stream_cancel(Ref),
    {messages, []} = process_info(self(), messages),
    true = py_test_util:wait_until(fun() -> Closed() =:= {ok, [<<"free">>]} end),
    %% another owner, here
    Self = self(),
    Owner = spawn(fun() -> receive {go, R} -> Self ! {got, take_data(R, 2)}, receive stop -> ok end end end),
    {ok, Ref2} = py:stream_start('__main__', endless, [<<"owned">>], #{ctx => Ctx, owner => Owner, window => 2}),
    Owner ! {go, Ref2},
    receive {got, [0, 1]} -> ok end,
    exit(Owner, kill),
    true = py_test_util:wait_until(fun() -> Closed() =:= {ok, [<<"free">>, <<"owned">>]} end),
    %% the caller's exit closes its streams on B
    Starter = spawn(fun() ->
                            Define(),
                            {ok, Ref3} = py:stream_start('__main__', endless, [<<"caller">>], #{ctx => Ctx, window => 1}),
                            Self ! {started, take_data(Ref3, 1)},
                            receive stop -> ok end
                    end),
    receive {started, [0]} -> ok end,
    exit(Starter, kill),
    true = py_test_util:wait_until(fun() -> Closed() =:= {ok, [<<"free">>, <<"owned">>, <<"caller">>]} end),
    true = py_test_util:wait_until(fun() -> erpc:call(B, py_remote, proxies, []) =:= 1 end),
    true = py_test_util:wait_until(fun() -> erpc:call(B, ets, tab2list, [py_remote_streams]) =:= [] end),
    peer:stop(Peer).

%% The owner may be on any node: on the context's own node, or a third
%% one; it acks and cancels from there. A restart of py_remote on the
%% caller's node changes nothing for streams running elsewhere.
remote_stream_owners_on_any_node(_Config) ->
    {PeerB, B} = peer(),
    {PeerC, C} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    ok = py:exec(Ctx, <<"def count(n):\n    for i in range(n):\n        yield i\n">>),
    Self = self(),
    Taker = fun() ->
                    receive {go, R} -> ok end,
                    Got = take_acking(R, 3),
                    ok = py:stream_cancel(R),
                    {messages, Left} = process_info(self(), messages),
                    Self ! {taken, node(), Got, Left}
            end,
    OnB = erpc:call(B, erlang, spawn, [Taker]),
    OnC = erpc:call(C, erlang, spawn, [Taker]),
    {ok, RefB} = py:stream_start('__main__', count, [1000000], #{ctx => Ctx, owner => OnB, window => 1}),
    {ok, RefC} = py:stream_start('__main__', count, [1000000], #{ctx => Ctx, owner => OnC, window => 1}),
    %% py_remote here restarts: the streams' routes are on B, with them
    ok = supervisor:terminate_child(erlang_python_sup, py_remote),
    {ok, _} = supervisor:restart_child(erlang_python_sup, py_remote),
    OnB ! {go, RefB},
    OnC ! {go, RefC},
    receive {taken, B, [0, 1, 2], []} -> ok end,
    receive {taken, C, [0, 1, 2], []} -> ok end,
    true = py_test_util:wait_until(fun() -> erpc:call(B, ets, tab2list, [py_remote_streams]) =:= [] end),
    [peer:stop(P) || P <- [PeerB, PeerC]],
    ok.

take_acking(_Ref, 0) ->
    [];
take_acking(Ref, N) ->
    receive
        {py_stream, Ref, {data, Item}} ->
            ok = py:stream_ack(Ref),
            [Item | take_acking(Ref, N - 1)]
    end.

remote_casts_interrupts_info(Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    %% a cast runs in this process's env there, in queue order
    ok = py:exec(Ctx, <<"def set_x(v):\n    global x\n    x = v\n">>),
    ok = py:cast(Ctx, '__main__', set_x, [1]),
    {ok, 1} = py:eval(Ctx, <<"x">>),
    {ok, Info} = py_context:info(Ctx),
    true = is_map(Info),
    %% interrupt: a call running on B, stopped from here
    Gate = py_test_util:gate(Config, Ctx),
    Self = self(),
    spawn(fun() -> Self ! {spun, py:call(Ctx, test_gate, wait, [Gate])} end),
    true = py_test_util:wait_until(fun() ->
                                           {ok, #{busy := Busy}} = py_context:info(Ctx),
                                           Busy
                                   end),
    ok = py:interrupt(Ctx),
    receive {spun, {error, interrupted}} -> ok end,
    not_running = py:interrupt(Ctx),
    {error, context_not_running} = py:interrupt(erpc:call(B, erlang, whereis, [init])),
    peer:stop(Peer),
    {error, {nodedown, B}} = py:interrupt(Ctx),
    {error, {nodedown, B}} = py_context:info(Ctx),
    ok.

remote_explicit_envs(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    Before = remote_envs(B),
    Self = self(),
    Maker = spawn(fun() ->
                          {ok, Env} = py_context:create_local_env(Ctx),
                          CtxRef = py_context:get_nif_ref(Ctx),
                          ok = py_nif:context_exec(CtxRef, <<"x = 40">>, Env),
                          {ok, 42} = py_nif:context_eval(CtxRef, <<"x + y">>, #{y => 2}, Env),
                          Self ! {env, CtxRef, Env},
                          receive stop -> ok end
                  end),
    {CtxRef, Env} = receive {env, R, E} -> {R, E} end,
    B = node(CtxRef),
    B = node(Env),
    %% sent to another process, it is the same env there
    {ok, 41} = py_nif:context_eval(CtxRef, <<"x + 1">>, #{}, Env),
    ok = py_nif:context_exec(CtxRef, <<"x = 0">>, Env),
    {ok, 0} = py_nif:context_eval(CtxRef, <<"x">>, #{}, Env),
    %% the wrong node: an env of B with a context here, and one of here on B
    LocalRef = py_context:get_nif_ref(py:context(1)),
    {error, _} = py_nif:context_eval(LocalRef, <<"1">>, #{}, Env),
    {ok, LocalEnv} = py_context:create_local_env(py:context(1)),
    {error, _} = py_nif:context_eval(CtxRef, <<"1">>, #{}, LocalEnv),
    {error, _} = py_nif:context_eval(CtxRef, <<"1">>, #{}, make_ref()),
    %% it lives as long as the process that made it
    true = remote_envs(B) > Before,
    Maker ! stop,
    true = py_test_util:wait_until(fun() -> remote_envs(B) =:= Before end),
    {error, _} = py_nif:context_eval(CtxRef, <<"x">>, #{}, Env),
    peer:stop(Peer),
    {error, {nodedown, B}} = py_nif:context_eval(CtxRef, <<"1">>, #{}, Env),
    {error, {nodedown, B}} = py_context:create_local_env(Ctx),
    ok.

%% A gen_server-style process taking remote answers in handle_info hears
%% of the node's loss as the message it was waiting for.
nodedown_reaches_handle_info(Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    Gate = py_test_util:gate(Config, Ctx),
    Self = self(),
    Taker = spawn(fun() ->
                          ok = py:exec(Ctx, <<"def endless():\n    while True:\n        yield 0\n">>),
                          %% the stream first: the call then keeps the context busy
                          {ok, S} = py:stream_start('__main__', endless, [], #{ctx => Ctx, window => 1}),
                          receive {py_stream, S, {data, 0}} -> ok end,
                          Ref = py:spawn_call(Ctx, test_gate, wait, [Gate]),
                          Self ! ready,
                          Got = [receive {py_response, Ref, R} -> {response, R} end,
                                 receive {py_stream, S, M} -> {stream, M} end],
                          {messages, Left} = process_info(self(), messages),
                          Self ! {taken, Got, Left}
                  end),
    receive ready -> ok end,
    peer:stop(Peer),
    receive
        {taken, Got, Left} ->
            [{response, {error, {nodedown, B}}}, {stream, {error, {nodedown, B}}}] = Got,
            [] = Left
    end,
    false = is_process_alive(Taker),
    ok.

%% print() in spawn_calls, casts and streams on B reaches this caller's
%% group leader, before the answer.
remote_output_of_async_calls(_Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    {{ok, none}, <<"async on B\n">>} =
        py_test_util:with_group_leader(fun() -> py:await(py:spawn_call(Ctx, builtins, print, [<<"async on B">>])) end),
    {{ok, [0, 1]}, <<"item 0\nitem 1\n">>} =
        py_test_util:with_group_leader(
          fun() ->
                  ok = py:exec(Ctx, <<"def loud(n):\n    for i in range(n):\n        print('item', i)\n        yield i\n">>),
                  py:stream(Ctx, '__main__', loud, [2], #{})
          end),
    Leader = py_test_util:collecting_leader(),
    Caster = spawn(fun() ->
                           group_leader(Leader, self()),
                           ok = py:cast(Ctx, builtins, print, [<<"cast on B">>]),
                           receive stop -> ok end
                   end),
    true = py_test_util:wait_until(fun() -> py_test_util:collected(Leader) =:= <<"cast on B\n">> end),
    Caster ! stop,
    peer:stop(Peer).

%% examples/dist_example.erl, as `make demo' runs it: eight calls over a
%% pool of two contexts here and two on a peer; the peer's prints show here.
pool_over_two_nodes_example(_Config) ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Example = filename:join([filename:dirname(filename:dirname(Source)), "examples", "dist_example.erl"]),
    {ok, dist_example, Beam} = compile:file(Example, [binary, return_errors]),
    {module, dist_example} = code:load_binary(dist_example, Example, Beam),
    {Results, Text} = py_test_util:with_group_leader(fun dist_example:main/0),
    Expected = [lists:sum([X * X || X <- lists:seq(0, 100000 * I - 1)]) || I <- lists:seq(1, 8)],
    Expected = [V || {_, V} <- Results],
    [Here, Here, There, There, Here, Here, There, There] = [W || {W, _} <- Results],
    Here = node(),
    true = There =/= Here,
    %% eight prints, from two OS processes, all at this caller's group
    %% leader. Counted, not split into lines: two contexts printing for one
    %% caller at once may interleave a print's text and its newline, which
    %% print() writes apart, as threads sharing a stream do in Python.
    ct:log("~ts", [Text]),
    {match, Prints} = re:run(Text, <<"work\\(\\d+\\) in OS process (\\d+)">>, [global, {capture, all_but_first, binary}]),
    8 = length(Prints),
    2 = length(lists:usort(Prints)),
    ok.

%% The same calls on a worker, a subinterp and an owngil context of B (the
%% modes B's Python offers): calls, streams, spawn_call, explicit envs and
%% print output, as on a local context of that mode.
remote_contexts_in_every_mode(_Config) ->
    {Peer, B} = peer(),
    Started = [{Mode, erpc:call(B, fun() ->
                                        case py_context:start_link({dist, Mode}, Mode) of
                                            {ok, C} -> unlink(C), {ok, C};
                                            {error, _} = Refused -> Refused
                                        end
                                end)} || Mode <- [worker, subinterp, owngil]],
    Ran = [Mode || {Mode, {ok, Ctx}} <- Started, ok =:= in_mode(Ctx)],
    ct:comment("modes on B: ~p", [Ran]),
    true = lists:member(worker, Ran),
    {ok, Version} = erpc:call(B, py, version, []),
    case binary:match(Version, <<"3.13">>) of
        {0, _} -> [worker, subinterp, owngil] = Ran;  % the NIF's own Python offers all three
        _ -> ok
    end,
    peer:stop(Peer).

in_mode(Ctx) ->
    {ok, 42} = py:eval(Ctx, <<"6 * 7">>),
    ok = py:exec(Ctx, <<"def count(n):\n    for i in range(n):\n        yield i\n">>),
    {ok, [0, 1, 2]} = py:stream(Ctx, '__main__', count, [3], #{}),
    {ok, 4.0} = py:await(py:spawn_call(Ctx, math, sqrt, [16])),
    {ok, Env} = py_context:create_local_env(Ctx),
    CtxRef = py_context:get_nif_ref(Ctx),
    ok = py_nif:context_exec(CtxRef, <<"v = 'explicit'">>, Env),
    {ok, <<"explicit">>} = py_nif:context_eval(CtxRef, <<"v">>, #{}, Env),
    {ok, <<"in a mode\n">>} = py_test_util:with_group_leader(fun() -> py:exec(Ctx, <<"print('in a mode')">>) end),
    ok.

%% A stream's items reach their owner while the caller waits on a call of
%% its own there, even when that call waits for the owner (as it would
%% locally, where the NIF sends to the owner directly).
async_answers_flow_during_a_call(Config) ->
    {Peer, B} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    Ctx2 = erpc:call(B, py, context, [2]),
    Gate = py_test_util:gate(Config, Ctx2),
    ok = py:exec(Ctx, <<"def count(n):\n    for i in range(n):\n        yield i\n">>),
    Self = self(),
    Owner = spawn_link(fun() ->
                               receive {go, R} -> ok end,
                               Got = take_data(R, 3),
                               ok = py_test_util:open_gate(Gate),  % the caller's call may end now
                               Self ! {owner_got, Got}
                       end),
    {ok, Ref} = py:stream_start('__main__', count, [3], #{ctx => Ctx, owner => Owner}),
    Owner ! {go, Ref},
    Spawned = py:spawn_call(Ctx, math, sqrt, [4]),
    %% this process waits in a call on B until the owner has its items
    {ok, none} = py:call(Ctx2, test_gate, wait, [Gate]),
    receive {owner_got, [0, 1, 2]} -> ok end,
    {ok, 2.0} = py:await(Spawned),
    peer:stop(Peer).

%% An owner on the context's node, of a stream a caller on a third node
%% started: when the caller's node goes, the owner hears of it.
owner_hears_when_the_callers_node_goes(_Config) ->
    {PeerB, B} = peer(),
    {PeerC, C} = peer(),
    Ctx = erpc:call(B, py, context, [1]),
    Self = self(),
    OnB = erpc:call(B, erlang, spawn, [fun() ->
                                               receive {go, R} -> ok end,
                                               [0] = take_data(R, 1),
                                               Self ! {on_b, ready},
                                               receive {py_stream, R, Last} -> Self ! {on_b, Last} end
                                       end]),
    _ = erpc:call(C, erlang, spawn, [fun() ->
                                             ok = py:exec(Ctx, <<"def endless():\n    while True:\n        yield 0\n">>),
                                             {ok, R} = py:stream_start('__main__', endless, [], #{ctx => Ctx, owner => OnB, window => 1}),
                                             OnB ! {go, R},
                                             receive stop -> ok end
                                     end]),
    receive {on_b, ready} -> ok end,
    peer:stop(PeerC),
    receive {on_b, Last} -> {error, {nodedown, C}} = Last end,
    true = py_test_util:wait_until(fun() -> erpc:call(B, ets, tab2list, [py_remote_streams]) =:= [] end),
    peer:stop(PeerB).
