%% Python calling Erlang: the erlang module's call/send/self, registered
%% functions, re-entrant exactly-once callbacks, in every mode there is.
-module(py_callbacks_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, worker}, {group, subinterp}, {group, owngil}, {group, isolated}, {group, once}].

groups() ->
    Cases = [call_syntaxes, unregistered_names_are_attribute_errors, nesting_exactly_once,
             errors_both_ways, results_convert, concurrent_callers, send_terms, send_to_dead_pid,
             self_is_the_caller, unregistering, callback_bounded_by_caller_timeout,
             calls_from_python_threads, big_maps_cross_both_ways, stop_while_callback_outstanding,
             unrelated_requests_wait_their_turn, outer_timeout_after_nested_call, dead_runner_is_an_error,
             cancelled_call_stops_its_runner, handles_from_python_threads, callbacks_refused_while_stopping,
             oversized_result_raises_at_once, colliding_dict_keys_refused, runner_exiting_normally_answers],
    [{worker, [], Cases}, {subinterp, [], Cases}, {owngil, [], Cases},
     %% an isolated context's stop ends its process: no __del__ runs
     {isolated, [], Cases -- [callbacks_refused_while_stopping]},
     %% these kill py_callbacks (whose restart restarts the event loop and
     %% py_logger too): twice, not in every mode, to stay inside the
     %% supervisor's restart intensity
     {once, [], [register_function_arguments, mfa_registration, answered_when_py_callbacks_dies,
                 answered_when_py_callbacks_dies_before_running_it]}].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    register_common(),
    Config.

%% py_callbacks starts empty when it restarts: some cases kill it.
register_common() ->
    ok = py:register_function(add, fun([A, B]) -> A + B end),
    ok = py:register_function(echo, fun(Args) -> Args end).

end_per_suite(_Config) ->
    py:unregister_function(add),
    py:unregister_function(echo),
    py_test_util:stop().

init_per_group(once, Config) ->
    Config;
init_per_group(Mode, Config) ->
    case py_test_util:start_group_context({callbacks, Mode}, Mode, Config) of
        {skip, _} = Skip ->
            Skip;
        GroupConfig ->
            ok = py:exec(?config(ctx, GroupConfig), <<"import erlang">>),
            GroupConfig
    end.

end_per_group(_Group, Config) ->
    py_test_util:stop_group_context(Config).

init_per_testcase(_Case, Config) ->
    %% each test case runs in a new process: give it the erlang module too
    case ?config(ctx, Config) of
        undefined -> ok;
        Ctx -> ok = py:exec(Ctx, <<"import erlang">>)
    end,
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

call_syntaxes(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, 3} = py:eval(Ctx, <<"erlang.call('add', 1, 2)">>),
    {ok, 7} = py:eval(Ctx, <<"erlang.add(3, 4)">>),
    ok = py:exec(Ctx, <<"from erlang import add">>),
    {ok, 11} = py:eval(Ctx, <<"add(5, 6)">>),
    {ok, true} = py:eval(Ctx, <<"callable(erlang.add)">>).

unregistered_names_are_attribute_errors(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, false} = py:eval(Ctx, <<"hasattr(erlang, 'no_such_function')">>),
    {ok, none} = py:eval(Ctx, <<"getattr(erlang, '__version__', None)">>),
    {error, {'AttributeError', _}} = py:eval(Ctx, <<"erlang.no_such_function(1)">>),
    {error, {'ImportError', _}} = py:exec(Ctx, <<"from erlang import no_such_function">>),
    {error, {'Error', Msg}} = py:eval(Ctx, <<"erlang.call('no_such_function')">>),
    {match, _} = re:run(Msg, "no Erlang function is registered").

%% Python -> Erlang -> Python ... 12 levels deep, on the same context. The
%% counters prove that each level's Python code before and after the
%% callback ran exactly once (no replay).
nesting_exactly_once(Config) ->
    Ctx = ?config(ctx, Config),
    CtxRef = py_context:get_nif_ref(Ctx),
    %% level/1 lives in the context's shared namespace: the callbacks run in
    %% processes of their own, which call it from there
    ok = py_nif:context_exec(CtxRef, <<"
import sys, types, erlang
counts = sys.modules.setdefault('_ep_counts', types.ModuleType('_ep_counts'))
counts.before = 0
counts.after = 0
def level(n):
    counts.before += 1
    result = erlang.deeper(n - 1) + 1
    counts.after += 1
    return result
">>),
    ok = py:register_function(deeper,
                              fun([0]) -> 0;
                                 ([N]) -> {ok, V} = py_nif:context_eval(CtxRef, <<"level(n)">>, #{n => N}), V
                              end),
    {ok, 12} = py_nif:context_eval(CtxRef, <<"level(12)">>, #{}),
    {ok, {12, 12}} = py_nif:context_eval(CtxRef, <<"(counts.before, counts.after)">>, #{}),
    py:unregister_function(deeper).

errors_both_ways(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(boom, fun(_) -> erlang:error({bad, thing}) end),
    ok = py:register_function(toss, fun(_) -> throw(ball) end),
    ok = py:exec(Ctx, <<"
def catch(name):
    try:
        getattr(erlang, name)()
    except erlang.Error as e:
        return [e.kind, e.reason, str(e)]
">>),
    {ok, [<<"error">>, {<<"bad">>, <<"thing">>}, <<"{bad,thing}">>]} = py:eval(Ctx, <<"catch('boom')">>),
    {ok, [<<"throw">>, <<"ball">>, <<"ball">>]} = py:eval(Ctx, <<"catch('toss')">>),
    %% a Python error inside the nested Python call is an {error, _} in the
    %% Erlang function, which can pass it on
    ok = py:register_function(relay, fun(_) -> py:eval(Ctx, <<"1/0">>) end),
    {ok, {<<"error">>, {<<"ZeroDivisionError">>, <<"division by zero">>}}} =
        py:eval(Ctx, <<"erlang.relay()">>),
    %% error texts stay bounded however deep the failing chain
    ok = py:register_function(deep_fail, fun([0]) -> error({deep, lists:duplicate(50, x)});
                                            ([N]) -> {error, R} = py:eval(Ctx, <<"__import__('erlang').deep_fail(n - 1)">>, #{n => N}),
                                                     error(R) end),
    {error, {'Error', Text}} = py:eval(Ctx, <<"erlang.deep_fail(10)">>),
    true = byte_size(Text) < 2100,
    py:unregister_function(deep_fail),
    {error, {'Error', <<"{bad,thing}">>}} = py:eval(Ctx, <<"erlang.boom()">>),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    [py:unregister_function(N) || N <- [boom, toss, relay]].

results_convert(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Ref = make_ref(),
    ok = py:register_function(terms, fun(_) -> {1, 2.5, <<"text">>, [true, none], #{k => v}, Self, Ref, 1 bsl 80} end),
    {ok, [<<"int">>, <<"float">>, <<"str">>, <<"list">>, <<"dict">>, <<"Pid">>, <<"Ref">>, <<"int">>]} =
        py:eval(Ctx, <<"[type(x).__name__ for x in erlang.terms()]">>),
    {ok, {1, 2.5, <<"text">>, [true, none], #{<<"k">> := <<"v">>}, Self, Ref, 1208925819614629174706176}} =
        py:eval(Ctx, <<"erlang.terms()">>),
    {ok, [1, <<"a">>, {2}]} = py:eval(Ctx, <<"erlang.echo(1, 'a', (2,))">>),
    py:unregister_function(terms).

concurrent_callers(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Pids = [spawn(fun() ->
                      R = [py:eval(Ctx, <<"__import__('erlang').add(i, i)">>, #{i => I}) || I <- lists:seq(1, 20)],
                      Self ! {done, self(), R}
                  end) || _ <- lists:seq(1, 50)],
    Expected = [{ok, 2 * I} || I <- lists:seq(1, 20)],
    [receive {done, P, R} -> Expected = R after ?PATIENCE -> ct:fail(stuck) end || P <- Pids].

send_terms(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Ref = make_ref(),
    Other = spawn(fun() -> receive M -> Self ! {relayed, M} end end),
    {ok, none} = py:eval(Ctx, <<"erlang.send(me, ('to self', r, [1, {'deep': (me,)}]))">>, #{me => Self, r => Ref}),
    receive {<<"to self">>, Ref, [1, #{<<"deep">> := {Self}}]} -> ok after ?PATIENCE -> ct:fail(no_message) end,
    {ok, none} = py:eval(Ctx, <<"erlang.send(other, erlang.Atom('hello'))">>, #{other => Other}),
    receive {relayed, hello} -> ok after ?PATIENCE -> ct:fail(not_relayed) end,
    %% the caller's own pid, from Python
    {ok, none} = py:eval(Ctx, <<"erlang.send(erlang.self(), 'ping')">>),
    receive <<"ping">> -> ok after ?PATIENCE -> ct:fail(no_ping) end,
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.send('not a pid', 1)">>).

send_to_dead_pid(Config) ->
    Ctx = ?config(ctx, Config),
    Dead = spawn(fun() -> ok end),
    MRef = monitor(process, Dead),
    receive {'DOWN', MRef, _, _, _} -> ok end,
    {error, {'ProcessLookupError', _}} = py:eval(Ctx, <<"erlang.send(p, 1)">>, #{p => Dead}).

self_is_the_caller(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    {ok, Self} = py:eval(Ctx, <<"erlang.self()">>),
    spawn(fun() -> Self ! {theirs, self(), py:eval(Ctx, <<"__import__('erlang').self()">>)} end),
    receive {theirs, P, R} -> {ok, P} = R end.

unregistering(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(<<"temporary">>, fun(_) -> here end),
    {ok, <<"here">>} = py:eval(Ctx, <<"erlang.temporary()">>),
    ok = py:unregister_function(temporary),
    {ok, false} = py:eval(Ctx, <<"hasattr(erlang, 'temporary')">>),
    {error, {'Error', _}} = py:eval(Ctx, <<"erlang.call('temporary')">>).

%% An Erlang function that never answers: the Python caller's own timeout
%% ends the wait, and the context goes on.
callback_bounded_by_caller_timeout(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(hang, fun(_) -> receive never -> ok end end),
    {error, timeout} = py:eval(Ctx, <<"erlang.hang()">>, #{}, #{timeout => 200}),
    {ok, 5} = py:eval(Ctx, <<"erlang.add(2, 3)">>),
    py:unregister_function(hang).

calls_from_python_threads(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"
import threading, concurrent.futures
results = []
def work(i):
    results.append(erlang.add(i, 100))
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    via_pool = list(pool.map(lambda i: erlang.add(i, 1000), range(3)))
def self_in_thread():
    out = []
    def f():
        try:
            erlang.self()
        except RuntimeError as e:
            out.append('RuntimeError')
    t = threading.Thread(target=f); t.start(); t.join()
    return out
">>),
    {ok, [100, 101, 102, 103]} = py:eval(Ctx, <<"sorted(results)">>),
    {ok, [1000, 1001, 1002]} = py:eval(Ctx, <<"via_pool">>),
    {ok, [<<"RuntimeError">>]} = py:eval(Ctx, <<"self_in_thread()">>).

%% Dicts past 128 keys, which context threads cannot build as maps, arrive
%% as maps in the Erlang function and in a sent message.
big_maps_cross_both_ways(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(size_of, fun([M]) -> map_size(M) end),
    {ok, 500} = py:eval(Ctx, <<"erlang.size_of({i: i for i in range(500)})">>),
    {ok, none} = py:eval(Ctx, <<"erlang.send(erlang.self(), {str(i): i for i in range(300)})">>),
    receive M when is_map(M) -> 300 = map_size(M) after ?PATIENCE -> ct:fail(no_map) end,
    py:unregister_function(size_of).

stop_while_callback_outstanding(Config) ->
    {ok, Ctx} = py_context:start_link(cb_stop, ?config(mode, Config)),
    unlink(Ctx),
    Self = self(),
    %% the function runs until told to answer
    ok = py:register_function(slow, fun(_) -> Self ! {in_callback, self()}, receive answer -> done end end),
    spawn(fun() -> Self ! {waiting, py:eval(Ctx, <<"__import__('erlang').slow()">>)} end),
    Runner = receive {in_callback, P} -> P after ?PATIENCE -> ct:fail(no_callback) end,
    ok = py_context:stop(Ctx),
    receive {waiting, R} -> {error, context_stopped} = R after ?PATIENCE -> ct:fail(stuck) end,
    %% the late reply finds nobody waiting (the runner may already have been
    %% stopped, since nobody waits for it)
    MRef = monitor(process, Runner),
    Runner ! answer,
    receive {'DOWN', MRef, process, Runner, _} -> ok after ?PATIENCE -> ct:fail(runner_stuck) end,
    {ok, 1} = py:eval(<<"1">>),
    py:unregister_function(slow).

%% While one request waits for its callback, other callers' requests keep
%% their place in the queue: only the callback's own requests run nested.
unrelated_requests_wait_their_turn(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(slowadd, fun([A, B]) -> timer:sleep(2), A + B end),
    Self = self(),
    Pids = [spawn(fun() -> Self ! {done, self(), py:eval(Ctx, <<"__import__('erlang').slowadd(i, 1)">>, #{i => I})} end)
            || I <- lists:seq(1, 300)],
    Results = [receive {done, P, R} -> R after ?PATIENCE -> ct:fail(stuck) end || P <- Pids],
    [] = [R || R <- Results, element(1, R) =/= ok],
    py:unregister_function(slowadd).

%% The outer request times out while a request of its callback runs nested:
%% once that one is done, the outer one is interrupted. The nested request
%% runs until the test has seen the timeout (it waits for a file to appear).
outer_timeout_after_nested_call(Config) ->
    Ctx = ?config(ctx, Config),
    Gate = py_test_util:gate(Config, Ctx),
    ok = py:register_function(nest, fun(_) ->
                                            {ok, V} = py:eval(Ctx, <<"__import__('test_gate').wait(g) or 5">>,
                                                              #{g => Gate}),
                                            V
                                    end),
    {error, timeout} = py:eval(Ctx, <<"erlang.nest() and exec('while True: pass')">>, #{}, #{timeout => 100}),
    ok = py_test_util:open_gate(Gate),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    py:unregister_function(nest).

dead_runner_is_an_error(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(suicide, fun(_) -> exit(self(), kill) end),
    {error, {'Error', <<"killed">>}} = py:eval(Ctx, <<"erlang.suicide()">>, #{}, #{timeout => ?PATIENCE}),
    py:unregister_function(suicide).

cancelled_call_stops_its_runner(Config) ->
    Ctx = ?config(ctx, Config),
    Name = list_to_atom("runner_" ++ atom_to_list(?config(mode, Config))),
    ok = py:register_function(hang_named, fun(_) -> register(Name, self()), receive never -> ok end end),
    {error, timeout} = py:eval(Ctx, <<"erlang.hang_named()">>, #{}, #{timeout => 200}),
    true = py_test_util:wait_until(fun() -> whereis(Name) =:= undefined end),
    py:unregister_function(hang_named).

handles_from_python_threads(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    ok = py:register_function(keep, fun([H]) -> Self ! {kept, H}, ok end),
    ok = py:exec(Ctx, <<"import threading
"
                        "t = threading.Thread(target=lambda: erlang.keep(__import__('fractions').Fraction(1, 2)))
"
                        "t.start(); t.join()">>),
    H = receive {kept, Handle} -> Handle after ?PATIENCE -> ct:fail(not_kept) end,
    {ok, 2} = py:getattr(H, denominator),
    py:unregister_function(keep).

%% A __del__ that calls Erlang while its context stops gets an error at
%% once instead of holding the stop up.
callbacks_refused_while_stopping(Config) ->
    {ok, Ctx} = py_context:start_link(del_cb, ?config(mode, Config)),
    unlink(Ctx),
    ok = py:exec(Ctx, <<"
import erlang
class CallsOnDel:
    def __del__(self):
        erlang.add(1, 2)
keep = CallsOnDel()
">>),
    Tag = make_ref(),
    ok = py_nif:context_stop(py_context:get_nif_ref(Ctx), Tag),
    receive {Tag, stopped} -> ok after ?PATIENCE -> ct:fail(stop_held_up) end,
    exit(Ctx, kill).

register_function_arguments(_Config) ->
    {error, {badarg, function}} = py:register_function(x, not_a_fun),
    {error, {badarg, function}} = py:register_function(x, fun(A, B) -> {A, B} end),
    {error, {badarg, name}} = py:register_function(42, fun(A) -> A end),
    {error, {badarg, function}} = py:register_function(x, "m", f).

mfa_registration(_Config) ->
    ok = py:register_function(mfa_len, erlang, length),
    {ok, 3} = py:eval(<<"__import__('erlang').mfa_len(1, 2, 3)">>),
    ok = py:unregister_function(mfa_len).

%% A result too large to hand to Python (over 1 GiB as a flat term, though
%% tiny on the heap) raises erlang.Error at once, in the context thread and
%% in a Python thread alike; nothing waits for ever.
oversized_result_raises_at_once(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(huge, fun(_) ->
                                            L1 = lists:duplicate(1000, 0),
                                            L2 = lists:duplicate(1000, L1),
                                            lists:duplicate(130, L2)
                                    end),
    ok = py:exec(Ctx, catch_module()),
    Expected = [<<"error">>, {<<"result_too_large">>, 1 bsl 30},
                <<"the Erlang function's result is larger than 1073741824 bytes as a term">>],
    {ok, Expected} = py:eval(Ctx, <<"catching(erlang.huge)">>, #{}, #{timeout => ?PATIENCE}),
    {ok, Expected} = py:eval(Ctx, <<"in_thread(erlang.huge)">>, #{}, #{timeout => ?PATIENCE}),
    %% the registry lives on
    {ok, 3} = py:eval(Ctx, <<"erlang.add(1, 2)">>),
    py:unregister_function(huge).

catch_module() ->
    <<"
import erlang, threading
def catching(f, *args):
    try:
        return ['ok', f(*args)]
    except erlang.Error as e:
        return [e.kind, e.reason, str(e)]
    except Exception as e:
        return [type(e).__name__, str(e)]
def in_thread(f, *args):
    out = []
    t = threading.Thread(target=lambda: out.append(catching(f, *args)))
    t.start()
    t.join()
    return out[0]
">>.

%% A function whose process ends with reason normal without answering
%% (exit(self(), normal) cannot be caught) still answers Python.
runner_exiting_normally_answers(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(quits, fun(_) -> exit(self(), normal) end),
    {error, {'Error', <<"normal">>}} = py:eval(Ctx, <<"erlang.quits()">>, #{}, #{timeout => ?PATIENCE}),
    py:unregister_function(quits).

%% Two keys of a dict that become one Erlang term ('x' and b'x') are
%% refused, naming the key, whatever the dict's size (small dicts become
%% maps on the context thread, big ones in the receiver): in results, in
%% the arguments of an Erlang function (which is then not called) and in
%% erlang.send.
colliding_dict_keys_refused(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, catch_module()),
    Self = self(),
    ok = py:register_function(must_not_run, fun(_) -> Self ! ran, ran end),
    Big = <<"{**{str(i): i for i in range(300)}, b'7': 'bytes'}">>,
    [begin
         {error, {duplicate_key, Key}} = py:eval(Ctx, Dict),
         {ok, [<<"ValueError">>, CallText]} = py:eval(Ctx, <<"catching(erlang.must_not_run, ", Dict/binary, ")">>),
         {match, _} = re:run(CallText, "erlang.call: two keys of one dict become the same Erlang term"),
         {ok, [<<"ValueError">>, SendText]} =
             py:eval(Ctx, <<"catching(erlang.send, erlang.self(), ", Dict/binary, ")">>),
         {match, _} = re:run(SendText, "erlang.send: two keys of one dict become the same Erlang term")
     end || {Dict, Key} <- [{<<"{'x': 1, b'x': 2}">>, <<"x">>}, {Big, <<"7">>}]],
    %% as deep as it is
    {error, {duplicate_key, <<"k">>}} = py:eval(Ctx, <<"[{'a': ({'k': 1, b'k': 2},)}]">>),
    %% nothing ran, nothing was sent
    {ok, 1} = py:eval(Ctx, <<"1">>),
    {messages, []} = process_info(self(), messages),
    py:unregister_function(must_not_run).

%% py_callbacks dying with calls in flight (a runner busy, or a call still
%% in its mailbox): every Python caller is answered, and calls work again
%% once it is back.
answered_when_py_callbacks_dies(_Config) ->
    Ctx = py:context(1),
    Self = self(),
    ok = py:register_function(blocks, fun(_) -> Self ! {blocking, self()}, receive never -> ok end end),
    spawn(fun() -> ok = py:exec(Ctx, catch_module()), Self ! {answer, py:eval(Ctx, <<"catching(erlang.blocks)">>)} end),
    Runner = receive {blocking, R} -> R after ?PATIENCE -> ct:fail(not_blocking) end,
    exit(whereis(py_callbacks), kill),
    receive
        {answer, A} -> {ok, [<<"exit">>, <<"py_callbacks_exited">>, _]} = A
    after ?PATIENCE -> ct:fail(caller_not_answered)
    end,
    %% the runner went with it
    true = py_test_util:wait_until(fun() -> not is_process_alive(Runner) end),
    callbacks_back(Ctx).

answered_when_py_callbacks_dies_before_running_it(_Config) ->
    Ctx = py:context(1),
    Self = self(),
    Dispatcher = whereis(py_callbacks),
    ok = sys:suspend(Dispatcher),
    spawn(fun() ->
              ok = py:exec(Ctx, catch_module()),
              Self ! {answer, py:eval(Ctx, <<"catching(erlang.call, 'add', 1, 2)">>)}
          end),
    true = py_test_util:wait_until(fun() -> {message_queue_len, 1} =:= process_info(Dispatcher, message_queue_len) end),
    exit(Dispatcher, kill),
    receive
        {answer, A} -> {ok, [<<"exit">>, <<"py_callbacks_exited">>, _]} = A
    after ?PATIENCE -> ct:fail(caller_not_answered)
    end,
    callbacks_back(Ctx).

callbacks_back(Ctx) ->
    true = py_test_util:wait_until(fun() -> is_pid(whereis(py_callbacks)) end),
    register_common(),
    {ok, 5} = py:eval(Ctx, <<"__import__('erlang').add(2, 3)">>).
