%% Spec §9: calls that do not wait (spawn_call, await, cast, parallel),
%% interrupts, streams with flow control, overload, and erlang.whereis /
%% erlang.send to a name: every case in each mode this Python offers.
-module(py_async_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, worker}, {group, subinterp}, {group, owngil}, {group, isolated}, {group, once}].

groups() ->
    Cases = [spawn_call_forms, spawn_call_runs_in_callers_env, response_message_in_handle_info,
             await_timeout_then_again, await_errors, spawn_call_refusals_answer_through_await,
             spawn_call_big_dict_answer, thousand_spawn_calls_awaited_in_reverse, callers_exit_with_calls_in_flight,
             cast_forms, cast_failure_logged, interrupt_running_call, interrupt_leaves_queued_calls,
             interrupt_idle_and_dead, interrupt_during_callback, interrupt_never_lands_in_next_call,
             stream_forms, stream_of_iterators, stream_of_async_generator, stream_errors, generator_raising_midway,
             window_bounds_unacknowledged, stream_waiting_lets_others_run, cancel_closes_on_its_thread,
             cancel_async_generator_closes_it, no_message_after_cancel, owner_exit_closes_generator,
             stream_owner_option, stream_items_convert_in_order, overload_refuses_at_once, whereis_and_send_to_name,
             stream_inside_a_callback, stream_of_a_dead_owner, stream_failed_from_outside,
             interrupt_caught_then_calls_work, async_generator_interrupted_while_awaiting,
             owner_exit_keeps_the_generators_globals],
    [{worker, [], Cases}, {subinterp, [], Cases}, {owngil, [], Cases},
     %% stream_failed_from_outside drives the NIF's relay of in-process streams
     {isolated, [], Cases -- [stream_failed_from_outside]},
     {once, [], [parallel_in_order, parallel_first_error_cancels_rest, parallel_bad_input,
                 max_queue_option_and_app_env, stream_churn_10000_processes]}].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_group(once, Config) ->
    Config;
init_per_group(Mode, Config) ->
    py_test_util:start_group_context({async, Mode}, Mode, Config).

end_per_group(_Group, Config) ->
    py_test_util:stop_group_context(Config).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    py_test_util:flush(),
    ok.

ctx(Config) ->
    ?config(ctx, Config).

%% The caller's env on Ctx gets these.
helpers(Ctx) ->
    ok = py:exec(Ctx, <<"
import sys, types, threading, time, asyncio, erlang
def squares(n):
    for i in range(n):
        yield i * i
def fails_after(n):
    for i in range(n):
        yield i
    raise ValueError('midway')
async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i
def slow_add(a, b):
    time.sleep(0.001)
    return a + b
">>).

%% ---------------------------------------------------------------------------
%% spawn_call, await, cast

spawn_call_forms(Config) ->
    Ctx = ctx(Config),
    {ok, 4.0} = py:await(py:spawn_call(Ctx, math, sqrt, [16])),
    {ok, <<"{\"a\": 1}">>} = py:await(py:spawn_call(Ctx, json, dumps, [#{a => 1}], #{})),
    {ok, <<"[1, 2]">>} = py:await(py:spawn_call(json, dumps, [[1, 2]])),
    {ok, <<"{\n \"a\": 1\n}">>} = py:await(py:spawn_call(json, dumps, [#{a => 1}], #{indent => 1}), 5000),
    %% refs are references, fit for maps and matching
    Ref = py:spawn_call(Ctx, math, pow, [2, 10]),
    true = is_reference(Ref),
    {ok, 1024.0} = receive {py_response, Ref, R} -> R after ?PATIENCE -> ct:fail(no_response) end.

spawn_call_runs_in_callers_env(Config) ->
    Ctx = ctx(Config),
    ok = py:exec(Ctx, <<"secret = 41\ndef reveal(): return secret + 1">>),
    {ok, 42} = py:await(py:spawn_call(Ctx, '__main__', reveal, [])),
    Self = self(),
    spawn(fun() -> Self ! {other, py:await(py:spawn_call(Ctx, '__main__', reveal, []))} end),
    receive {other, R} -> {error, {'NameError', _}} = R after ?PATIENCE -> ct:fail(stuck) end.

%% A gen_server takes the answer in handle_info.
response_message_in_handle_info(Config) ->
    Ctx = ctx(Config),
    {ok, Server} = gen_server:start(?MODULE, {collector, Ctx}, []),
    {ok, [{ok, 3}, {ok, 30}]} = gen_server:call(Server, results, ?PATIENCE),
    gen_server:stop(Server).

init({collector, Ctx}) ->
    Refs = [py:spawn_call(Ctx, operator, add, [N, N * 2]) || N <- [1, 10]],
    {ok, #{refs => Refs, results => #{}, waiting => undefined}}.

handle_call(results, From, State) ->
    maybe_answer(State#{waiting => From}).

handle_cast(_Msg, State) ->
    {noreply, State}.

handle_info({py_response, Ref, Result}, #{results := Results} = State) ->
    maybe_answer(State#{results => Results#{Ref => Result}}).

maybe_answer(#{refs := Refs, results := Results, waiting := From} = State)
  when map_size(Results) =:= length(Refs), From =/= undefined ->
    gen_server:reply(From, {ok, [maps:get(R, Results) || R <- Refs]}),
    {noreply, State};
maybe_answer(State) ->
    {noreply, State}.

await_timeout_then_again(Config) ->
    Ctx = ctx(Config),
    Gate = py_test_util:gate(Config, Ctx),
    Ref = py:spawn_call(Ctx, test_gate, wait, [Gate]),
    {error, timeout} = py:await(Ref, 10),
    ok = py_test_util:open_gate(Gate),
    {ok, none} = py:await(Ref, ?PATIENCE).

await_errors(Config) ->
    Ctx = ctx(Config),
    {error, {badarg, ref}} = py:await(not_a_ref),
    {error, {badarg, ref}} = py:await(make_ref(), 10),
    Ref = py:spawn_call(Ctx, math, sqrt, [4]),
    {error, {badarg, timeout}} = py:await(Ref, -1),
    {error, {badarg, timeout}} = py:await(Ref, soon),
    %% only the process that spawned the call may await it
    Self = self(),
    spawn(fun() -> Self ! {theirs, py:await(Ref, 10)} end),
    receive {theirs, T} -> {error, not_owner} = T after ?PATIENCE -> ct:fail(stuck) end,
    {ok, 2.0} = py:await(Ref),
    %% a Python exception, with its traceback kept
    {error, {'ValueError', <<"math domain error">>}} = py:await(py:spawn_call(Ctx, math, sqrt, [-1])),
    {match, _} = re:run(py:last_traceback(), "ValueError: math domain error").

%% Refused before anything ran: the answer still comes through the Ref.
spawn_call_refusals_answer_through_await(Config) ->
    Ctx = ctx(Config),
    {error, {badarg, args}} = py:await(py:spawn_call(Ctx, math, sqrt, not_a_list)),
    {error, {badarg, module}} = py:await(py:spawn_call(Ctx, 42, sqrt, [1])),
    {error, {badarg, kwargs}} = py:await(py:spawn_call(Ctx, math, sqrt, [1], [not_a_map])),
    {error, {badarg, context}} = py:await(py:spawn_call(not_a_pid, math, sqrt, [1], #{})),
    {error, context_not_running} = py:await(py:spawn_call(list_to_pid("<0.4242.0>"), math, sqrt, [1])),
    {error, {unsupported_term, _}} = py:await(py:spawn_call(Ctx, builtins, id, [fun() -> ok end])).

%% A dict too big to become a map on the context thread: the answer is
%% built on the way (through py_callbacks) and is still a plain message.
spawn_call_big_dict_answer(Config) ->
    Ctx = ctx(Config),
    Ref = py:spawn_call(Ctx, builtins, dict, [], #{}),
    {ok, #{}} = py:await(Ref),
    ok = py:exec(Ctx, <<"def big(n): return {i: str(i) for i in range(n)}">>),
    Big = py:spawn_call(Ctx, '__main__', big, [500]),
    receive
        {py_response, Big, {ok, Map}} -> 500 = map_size(Map), <<"499">> = maps:get(499, Map)
    after ?PATIENCE -> ct:fail(no_response)
    end.

thousand_spawn_calls_awaited_in_reverse(Config) ->
    Ctx = ctx(Config),
    helpers(Ctx),
    Refs = [{N, py:spawn_call(Ctx, '__main__', slow_add, [N, 1])} || N <- lists:seq(1, 1000)],
    [{ok, Expected} = py:await(Ref) || {N, Ref} <- lists:reverse(Refs), Expected <- [N + 1]],
    {messages, []} = process_info(self(), messages).

%% Callers exiting with calls queued and running: they finish (answers
%% dropped), envs are released, nothing is left.
callers_exit_with_calls_in_flight(Config) ->
    Ctx = ctx(Config),
    {ok, _} = py:eval(Ctx, <<"1">>),
    #{envs_alive := Envs} = py:info(),
    Self = self(),
    Pids = [spawn(fun() ->
                      _ = [py:spawn_call(Ctx, time, sleep, [0.001]) || _ <- lists:seq(1, 5)],
                      Self ! {spawned, self()}
                  end) || _ <- lists:seq(1, 100)],
    [receive {spawned, P} -> ok after ?PATIENCE -> ct:fail(stuck) end || P <- Pids],
    %% a call queued behind them all answers once they are done
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    py_test_util:settle(Envs).

cast_forms(Config) ->
    Ctx = ctx(Config),
    Setup = <<"import sys, types\nsys.modules.setdefault('_ep_cast', types.ModuleType('_ep_cast')).seen = []">>,
    ok = py:exec(Ctx, Setup),
    ok = py:exec(Setup),  % the default context may be another interpreter's
    ok = py:cast(Ctx, '_ep_cast', 'seen.append', [1]),
    ok = py:cast(Ctx, '_ep_cast', 'seen.append', [2], #{}),
    ok = py:cast('_ep_cast', 'seen.append', [3]),
    ok = py:cast('_ep_cast', 'seen.append', [4], #{}),
    {error, {badarg, args}} = py:cast(Ctx, math, sqrt, not_a_list),
    {error, {badarg, context}} = py:cast(not_a_pid, math, sqrt, [1], #{}),
    true = py_test_util:wait_until(fun() ->
                                       {ok, A} = py:eval(Ctx, <<"__import__('_ep_cast').seen">>),
                                       {ok, B} = py:eval(<<"__import__('_ep_cast').seen">>),
                                       lists:sort(lists:usort(A ++ B)) =:= [1, 2, 3, 4]
                                   end).

cast_failure_logged(Config) ->
    Ctx = ctx(Config),
    ok = py_test_util:capture_logs(?MODULE, fun(Meta) -> maps:get(python_logger, Meta, x) =:= <<"erlang_python.cast">> end),
    try
        ok = py:exec(Ctx, <<"def broken(x):\n    raise KeyError(x)">>),
        ok = py:cast(Ctx, '__main__', broken, [<<"cast key">>]),
        receive
            {logged, error, Text, Meta} ->
                {match, _} = re:run(Text, "py:cast of '__main__':broken failed"),
                {match, _} = re:run(Text, "Traceback"),
                {match, _} = re:run(Text, "KeyError: 'cast key'"),
                Self = self(),
                #{pid := Self} = Meta
        after ?PATIENCE ->
            ct:fail(nothing_logged)
        end
    after
        logger:remove_handler(?MODULE)
    end.

%% ---------------------------------------------------------------------------
%% interrupt

interrupt_running_call(Config) ->
    Ctx = ctx(Config),
    Self = self(),
    spawn(fun() -> Self ! {answer, py:eval(Ctx, <<"exec('while True: pass')">>)} end),
    true = busy(Ctx),
    ok = py:interrupt(Ctx),
    receive {answer, A} -> {error, interrupted} = A after ?PATIENCE -> ct:fail(not_interrupted) end,
    %% py_context:interrupt/1 is the same, and a spawned call answers likewise
    Ref = py:spawn_call(Ctx, builtins, exec, [<<"while True: pass">>, #{}]),
    true = busy(Ctx),
    ok = py_context:interrupt(Ctx),
    {error, interrupted} = py:await(Ref, ?PATIENCE),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>).

interrupt_leaves_queued_calls(Config) ->
    Ctx = ctx(Config),
    Self = self(),
    spawn(fun() -> Self ! {running, py:eval(Ctx, <<"exec('while True: pass')">>)} end),
    true = busy(Ctx),
    Queued = [py:spawn_call(Ctx, operator, mul, [N, 2]) || N <- lists:seq(1, 10)],
    true = py_test_util:wait_until(fun() -> {ok, #{queue_length := Q}} = py_context:info(Ctx), Q =:= 10 end),
    ok = py:interrupt(Ctx),
    receive {running, R} -> {error, interrupted} = R after ?PATIENCE -> ct:fail(stuck) end,
    [{ok, Double} = py:await(Ref) || {N, Ref} <- lists:zip(lists:seq(1, 10), Queued), Double <- [2 * N]].

interrupt_idle_and_dead(Config) ->
    Ctx = ctx(Config),
    {ok, _} = py:eval(Ctx, <<"1">>),
    true = py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(Ctx), not B end),
    not_running = py:interrupt(Ctx),
    {ok, Short} = py_context:start_link(short, ?config(mode, Config)),
    ok = py_context:stop(Short),
    {error, context_not_running} = py:interrupt(Short),
    {error, context_not_running} = py_context:interrupt(Short),
    {error, context_not_running} = py:interrupt(self()).

%% A call waiting for an Erlang function is interrupted at once.
interrupt_during_callback(Config) ->
    Ctx = ctx(Config),
    Self = self(),
    ok = py:register_function(async_suite_blocks, fun(_) -> Self ! {in_callback, self()}, receive never -> ok end end),
    spawn(fun() -> Self ! {answer, py:eval(Ctx, <<"__import__('erlang').async_suite_blocks()">>)} end),
    receive {in_callback, _} -> ok after ?PATIENCE -> ct:fail(no_callback) end,
    ok = py:interrupt(Ctx),
    receive {answer, A} -> {error, interrupted} = A after ?PATIENCE -> ct:fail(not_interrupted) end,
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    py:unregister_function(async_suite_blocks).

%% Interrupts racing the end of the call they aim at never reach the next.
interrupt_never_lands_in_next_call(Config) ->
    Ctx = ctx(Config),
    ok = py:exec(Ctx, <<"def spin(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n">>),
    Results = [begin
                   Ref = py:spawn_call(Ctx, '__main__', spin, [rand:uniform(20000)]),
                   _ = [py:interrupt(Ctx) || _ <- lists:seq(1, rand:uniform(3))],
                   First = py:await(Ref),
                   true = First =:= {error, interrupted} orelse element(1, First) =:= ok,
                   py:call(Ctx, '__main__', spin, [10], #{}, #{timeout => ?PATIENCE})
               end || _ <- lists:seq(1, 300)],
    [{ok, 45}] = lists:usort(Results).

busy(Ctx) ->
    py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(Ctx), B end).

%% ---------------------------------------------------------------------------
%% streams

stream_forms(Config) ->
    Ctx = ctx(Config),
    helpers(Ctx),
    {ok, [0, 1, 4, 9]} = py:stream(Ctx, '__main__', squares, [4], #{}),
    {ok, [0, 1, 4]} = py:stream(Ctx, '__main__', squares, [], #{n => 3}),
    {ok, [0, 1, 2]} = py:stream(builtins, range, [3]),
    {ok, [3, 4]} = py:stream(builtins, range, [3, 5], #{}),
    {ok, []} = py:stream(Ctx, builtins, iter, [[]], #{}),
    {ok, Ref} = py:stream_start('__main__', squares, [3], #{ctx => Ctx}),
    [{data, 0}, {data, 1}, {data, 4}, done] = stream_messages(Ref),
    {ok, Ref2} = py:stream_start(builtins, range, [2]),
    [{data, 0}, {data, 1}, done] = stream_messages(Ref2).

%% The messages of stream Ref up to its end.
stream_messages(Ref) ->
    receive
        {py_stream, Ref, {data, _} = D} -> [D | stream_messages(Ref)];
        {py_stream, Ref, End} -> [End]
    after ?PATIENCE ->
        ct:fail({stream_stuck, Ref})
    end.

stream_of_iterators(Config) ->
    Ctx = ctx(Config),
    {ok, [<<"a">>, <<"b">>]} = py:stream(Ctx, builtins, iter, [[<<"a">>, <<"b">>]], #{}),
    {ok, [{<<"k">>, 1}]} = py:stream(Ctx, builtins, 'dict.items', [#{k => 1}], #{}),
    {ok, [0, 2, 4]} = py:stream(Ctx, itertools, islice, [[0, 1, 2, 3, 4], 0, 5, 2], #{}),
    {ok, [<<"x">>, <<"y">>]} = py:stream(Ctx, builtins, str, [<<"xy">>], #{}).

stream_of_async_generator(Config) ->
    Ctx = ctx(Config),
    helpers(Ctx),
    {ok, [0, 1, 2, 3]} = py:stream(Ctx, '__main__', agen, [4], #{}),
    {ok, Ref} = py:stream_start('__main__', agen, [2], #{ctx => Ctx, window => 1}),
    receive {py_stream, Ref, {data, 0}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    ok = py:stream_ack(Ref),
    receive {py_stream, Ref, {data, 1}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    ok = py:stream_ack(Ref),
    receive {py_stream, Ref, done} -> ok after ?PATIENCE -> ct:fail(stuck) end.

stream_errors(Config) ->
    Ctx = ctx(Config),
    {error, {'TypeError', _}} = py:stream(Ctx, builtins, abs, [5], #{}),
    {error, {'NameError', _}} = py:stream(Ctx, '__main__', not_defined_here, [], #{}),
    {error, {'ModuleNotFoundError', _}} = py:stream(Ctx, no_such_module_xyz, f, [], #{}),
    {error, {badarg, args}} = py:stream_start(builtins, range, not_a_list, #{ctx => Ctx}),
    {error, {badarg, {option, bogus}}} = py:stream_start(builtins, range, [1], #{bogus => 1}),
    {error, {badarg, window}} = py:stream_start(builtins, range, [1], #{window => 0}),
    {error, {badarg, window}} = py:stream_start(builtins, range, [1], #{window => many}),
    {error, {badarg, owner}} = py:stream_start(builtins, range, [1], #{owner => self}),
    {error, {badarg, ctx}} = py:stream_start(builtins, range, [1], #{ctx => 1}),
    {error, {badarg, kwargs}} = py:stream_start(builtins, range, [1], #{kwargs => []}),
    {error, {badarg, options}} = py:stream_start(builtins, range, [1], [window]),
    {error, context_not_running} = py:stream_start(builtins, range, [1], #{ctx => list_to_pid("<0.4242.0>")}),
    %% acks and cancels of things that are not streams
    {error, {badarg, ref}} = py:stream_ack(make_ref()),
    {error, {badarg, ref}} = py:stream_ack(not_a_ref, 1),
    {error, {badarg, ref}} = py:stream_cancel(make_ref()),
    {ok, Ref} = py:stream_start(builtins, range, [1], #{ctx => Ctx}),
    {error, {badarg, count}} = py:stream_ack(Ref, 0),
    {error, {badarg, count}} = py:stream_ack(Ref, -1),
    [{data, 0}, done] = stream_messages(Ref),
    %% acks and cancels of a stream that has ended are harmless, twice too
    ok = py:stream_ack(Ref),
    ok = py:stream_cancel(Ref),
    ok = py:stream_cancel(Ref).

generator_raising_midway(Config) ->
    Ctx = ctx(Config),
    helpers(Ctx),
    {error, {'ValueError', <<"midway">>}} = py:stream(Ctx, '__main__', fails_after, [3], #{}),
    {ok, Ref} = py:stream_start('__main__', fails_after, [2], #{ctx => Ctx}),
    [{data, 0}, {data, 1}, {error, {'ValueError', <<"midway">>}}] = stream_messages(Ref).

%% The generator counts what it yields: with a window of W and no acks it
%% has yielded exactly W (the stream stopped before asking for more), each
%% ack lets exactly that many more through.
window_bounds_unacknowledged(Config) ->
    Ctx = ctx(Config),
    counting(Ctx),
    {ok, Ref} = py:stream_start('__main__', counted, [100], #{ctx => Ctx, window => 4}),
    [receive {py_stream, Ref, {data, I}} -> ok after ?PATIENCE -> ct:fail(stuck) end || I <- lists:seq(0, 3)],
    %% a call queued now runs after the stream's last step: it sees the count
    {ok, 4} = py:eval(Ctx, <<"__import__('_ep_counted').n">>),
    receive {py_stream, Ref, _} = Early -> ct:fail({past_the_window, Early}) after 0 -> ok end,
    ok = py:stream_ack(Ref),
    receive {py_stream, Ref, {data, 4}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    {ok, 5} = py:eval(Ctx, <<"__import__('_ep_counted').n">>),
    ok = py:stream_ack(Ref, 3),
    [receive {py_stream, Ref, {data, I}} -> ok after ?PATIENCE -> ct:fail(stuck) end || I <- lists:seq(5, 7)],
    {ok, 8} = py:eval(Ctx, <<"__import__('_ep_counted').n">>),
    ok = py:stream_cancel(Ref).

counting(Ctx) ->
    ok = py:exec(Ctx, <<"
import sys, types
counted_state = sys.modules.setdefault('_ep_counted', types.ModuleType('_ep_counted'))
counted_state.n = 0
def counted(n):
    for i in range(n):
        counted_state.n += 1
        yield i
">>).

%% A stream stopped at its window does not hold the context: 100 other
%% processes' calls run meanwhile.
stream_waiting_lets_others_run(Config) ->
    Ctx = ctx(Config),
    helpers(Ctx),
    {ok, Ref} = py:stream_start('__main__', squares, [1000], #{ctx => Ctx, window => 2}),
    [receive {py_stream, Ref, {data, _}} -> ok after ?PATIENCE -> ct:fail(stuck) end || _ <- [1, 2]],
    Self = self(),
    Pids = [spawn(fun() -> Self ! {done, self(), py:call(Ctx, operator, add, [N, 1])} end) || N <- lists:seq(1, 100)],
    [receive {done, P, R} -> {ok, _} = R after ?PATIENCE -> ct:fail({caller_stuck, P}) end || P <- Pids],
    %% and the stream goes on when acknowledged
    ok = py:stream_ack(Ref, 2),
    [receive {py_stream, Ref, {data, _}} -> ok after ?PATIENCE -> ct:fail(stuck) end || _ <- [1, 2]],
    ok = py:stream_cancel(Ref).

%% stream_cancel closes the generator (its finally runs) on the context's
%% own thread.
cancel_closes_on_its_thread(Config) ->
    Ref = cancelled_after_one_item(ctx(Config), tracked),
    ok = py:stream_cancel(Ref).

cancel_async_generator_closes_it(Config) ->
    cancelled_after_one_item(ctx(Config), tracked_async).

%% Streams Generator (of closing_tracker), cancels it after its first item
%% and checks that its finally ran once, on the context's thread.
cancelled_after_one_item(Ctx, Generator) ->
    closing_tracker(Ctx),
    {ok, Thread} = py:eval(Ctx, <<"__import__('threading').get_ident()">>),
    {ok, Ref} = py:stream_start('__main__', Generator, [1000], #{ctx => Ctx, window => 1}),
    receive {py_stream, Ref, {data, 0}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    ok = py:stream_cancel(Ref),
    true = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"__import__('_ep_closed').log">>) =:= {ok, [Thread]} end),
    Ref.

closing_tracker(Ctx) ->
    ok = py:exec(Ctx, <<"
import sys, types, threading
closed_state = sys.modules.setdefault('_ep_closed', types.ModuleType('_ep_closed'))
closed_state.log = []
def tracked(n):
    try:
        for i in range(n):
            yield i
    finally:
        closed_state.log.append(threading.get_ident())
async def tracked_async(n):
    try:
        for i in range(n):
            yield i
    finally:
        closed_state.log.append(threading.get_ident())
">>).

%% A free-running stream cancelled mid-flight: once stream_cancel returns,
%% nothing more of it arrives (the context is past its close when a call
%% queued afterwards answers).
no_message_after_cancel(Config) ->
    Ctx = ctx(Config),
    helpers(Ctx),
    [begin
         {ok, Ref} = py:stream_start('__main__', squares, [100000], #{ctx => Ctx}),
         receive {py_stream, Ref, {data, _}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
         ok = py:stream_cancel(Ref),
         {ok, 1} = py:eval(Ctx, <<"1">>),
         receive {py_stream, Ref, _} = Late -> ct:fail({message_after_cancel, Late}) after 0 -> ok end
     end || _ <- lists:seq(1, 20)].

owner_exit_closes_generator(Config) ->
    Ctx = ctx(Config),
    Self = self(),
    Owner = spawn(fun() ->
                      closing_tracker(Ctx),  % in this process's env
                      {ok, Ref} = py:stream_start('__main__', tracked, [1000], #{ctx => Ctx, window => 1}),
                      receive {py_stream, Ref, {data, 0}} -> Self ! started end,
                      receive never -> ok end
                  end),
    receive started -> ok after ?PATIENCE -> ct:fail(not_started) end,
    exit(Owner, kill),
    true = py_test_util:wait_until(fun() -> {ok, 1} =:= py:eval(Ctx, <<"len(__import__('_ep_closed').log)">>) end).

%% The messages go to `owner'; the stream still runs in the caller's env.
stream_owner_option(Config) ->
    Ctx = ctx(Config),
    ok = py:exec(Ctx, <<"mine = [7, 8]">>),
    Self = self(),
    Owner = spawn(fun() -> receive {go, Ref} -> Self ! {owner_saw, stream_messages(Ref)} end end),
    {ok, Ref} = py:stream_start(builtins, iter, [[1]], #{ctx => Ctx, owner => Owner}),
    Owner ! {go, Ref},
    receive {owner_saw, Seen} -> [{data, 1}, done] = Seen after ?PATIENCE -> ct:fail(stuck) end,
    ok = py:exec(Ctx, <<"def mine_again(): return iter(mine)">>),
    {ok, [7, 8]} = py:stream(Ctx, '__main__', mine_again, [], #{}),
    {messages, []} = process_info(self(), messages).

%% Items convert as results do, dicts of any size included, in order (big
%% dicts are built on the way, and every later message takes that way too).
stream_items_convert_in_order(Config) ->
    Ctx = ctx(Config),
    ok = py:exec(Ctx, <<"
def mixed():
    yield 1
    yield {i: i for i in range(300)}
    yield 'after'
    yield {'small': [1.5, None, (True,)]}
    yield {i: -i for i in range(200)}
    yield 2 ** 100
">>),
    {ok, [1, Big, <<"after">>, #{<<"small">> := [1.5, none, {true}]}, Big2, Huge]} =
        py:stream(Ctx, '__main__', mixed, [], #{}),
    300 = map_size(Big),
    200 = map_size(Big2),
    -199 = maps:get(199, Big2),
    Huge = 1 bsl 100,
    %% and a dict whose keys collide ends the stream with the key
    ok = py:exec(Ctx, <<"def colliding():\n    yield 1\n    yield {'k': 1, b'k': 2}\n    yield 3">>),
    {ok, Ref} = py:stream_start('__main__', colliding, [], #{ctx => Ctx}),
    [{data, 1}, {error, {duplicate_key, <<"k">>}}] = stream_messages(Ref).

%% Past max_queue, calls are refused at once; info shows the length, the
%% peak and the refusals.
overload_refuses_at_once(Config) ->
    {ok, Ctx} = py_context:start_link(overload, ?config(mode, Config), #{max_queue => 5}),
    Gate = py_test_util:gate(Config, Ctx),
    Self = self(),
    spawn(fun() -> Self ! {blocker, py:call(Ctx, test_gate, wait, [Gate])} end),
    true = busy(Ctx),
    Queued = [py:spawn_call(Ctx, operator, add, [N, 0]) || N <- lists:seq(1, 5)],
    {error, overloaded} = py:eval(Ctx, <<"1">>),
    {error, overloaded} = py:await(py:spawn_call(Ctx, operator, add, [1, 1])),
    {error, overloaded} = py:cast(Ctx, operator, add, [1, 1]),
    {error, overloaded} = py:stream_start(builtins, range, [3], #{ctx => Ctx}),
    {ok, #{queue_length := 5, queue_peak := 5, max_queue := 5, refused := 4}} = py_context:info(Ctx),
    ok = py_test_util:open_gate(Gate),
    receive {blocker, B} -> {ok, none} = B after ?PATIENCE -> ct:fail(stuck) end,
    [{ok, N} = py:await(Ref) || {N, Ref} <- lists:zip(lists:seq(1, 5), Queued)],
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

whereis_and_send_to_name(Config) ->
    Ctx = ctx(Config),
    Name = list_to_atom("async_suite_" ++ atom_to_list(?config(mode, Config))),
    true = register(Name, self()),
    try
        Self = self(),
        {ok, Self} = py:eval(Ctx, <<"__import__('erlang').whereis(__import__('erlang').Atom(n))">>,
                             #{n => atom_to_binary(Name)}),
        {ok, Self} = py:eval(Ctx, <<"__import__('erlang').whereis(n)">>, #{n => atom_to_binary(Name)}),
        {ok, none} = py:eval(Ctx, <<"__import__('erlang').send(__import__('erlang').Atom(n), ('hi', 1))">>,
                             #{n => atom_to_binary(Name)}),
        receive {<<"hi">>, 1} -> ok after ?PATIENCE -> ct:fail(not_sent) end,
        %% big maps go the relayed way, to the name too
        {ok, none} = py:eval(Ctx, <<"__import__('erlang').send(__import__('erlang').Atom(n), {i: i for i in range(200)})">>,
                             #{n => atom_to_binary(Name)}),
        receive M when is_map(M) -> 200 = map_size(M) after ?PATIENCE -> ct:fail(not_sent) end,
        %% names nobody holds, and names no atom has: no atom is made for them
        {ok, none} = py:eval(Ctx, <<"__import__('erlang').whereis('no_process_has_this_name')">>),
        Fresh = <<"never_an_atom_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
        {ok, none} = py:eval(Ctx, <<"__import__('erlang').whereis(n)">>, #{n => Fresh}),
        {error, {'ProcessLookupError', _}} =
            py:eval(Ctx, <<"__import__('erlang').send(__import__('erlang').Atom(n), 1)">>, #{n => Fresh}),
        ?assertError(badarg, binary_to_existing_atom(Fresh)),
        {error, {'TypeError', _}} = py:eval(Ctx, <<"__import__('erlang').whereis(42)">>),
        {error, {'TypeError', _}} = py:eval(Ctx, <<"__import__('erlang').send('a plain str', 1)">>)
    after
        unregister(Name)
    end.

%% ---------------------------------------------------------------------------
%% once

parallel_in_order(_Config) ->
    {ok, [2.0, 3.0, 4.0, <<"x">>]} =
        py:parallel([{math, sqrt, [4]}, {math, sqrt, [9]}, {math, sqrt, [16]}, {builtins, str, [], #{object => x}}]),
    {ok, []} = py:parallel([]),
    Many = [{operator, mul, [N, N]} || N <- lists:seq(1, 50)],
    Expected = [N * N || N <- lists:seq(1, 50)],
    {ok, Expected} = py:parallel(Many),
    {messages, []} = process_info(self(), messages).

parallel_first_error_cancels_rest(_Config) ->
    {error, {'ValueError', _}} =
        py:parallel([{math, sqrt, [4]}, {math, sqrt, [-1]}, {time, sleep, [0.01]}, {math, sqrt, [-2]}]),
    %% nothing left behind in the mailbox, even of calls still running
    {ok, 1} = py:eval(<<"1">>),
    [{ok, 1} = py:eval(py:context(I), <<"1">>) || I <- lists:seq(1, py_context_pool:size())],
    {messages, []} = process_info(self(), messages).

parallel_bad_input(_Config) ->
    {error, {badarg, calls}} = py:parallel(not_a_list),
    {error, {badarg, calls}} = py:parallel([{math, sqrt}]),
    {error, {badarg, calls}} = py:parallel([{math, sqrt, not_a_list}]),
    {error, {badarg, calls}} = py:parallel([{math, sqrt, [1], not_a_map}]).

max_queue_option_and_app_env(_Config) ->
    {error, {badarg, options}} = py_context:start_link(x, worker, #{max_queue => 0}),
    {error, {badarg, options}} = py_context:start_link(x, worker, #{max_queue => lots}),
    {ok, Default} = py_context:start_link(x, worker),
    {ok, #{max_queue := 100000, queue_peak := _, refused := 0}} = py_context:info(Default),
    ok = py_context:stop(Default),
    ok = application:set_env(erlang_python, max_queue, 77),
    try
        {ok, FromEnv} = py_context:start_link(y, worker),
        {ok, #{max_queue := 77}} = py_context:info(FromEnv),
        ok = py_context:stop(FromEnv)
    after
        application:unset_env(erlang_python, max_queue)
    end,
    #{contexts := [#{max_queue := _, queue_peak := _, refused := _} | _]} = py:info().

%% 10,000 processes each start a stream and exit half-way: every generator
%% is closed (its finally ran), and streams, envs and Python objects are
%% back where they were.
stream_churn_10000_processes(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"import sys, types\n"
                        "sys.modules['_ep_closed'] = types.ModuleType('_ep_closed')\n"
                        "sys.modules['_ep_closed'].log = 0\n">>),
    {ok, _} = py:eval(<<"1">>),
    Churn = fun(N) ->
                Self = self(),
                lists:foreach(
                  fun(_) ->
                      Pids = [spawn(fun() ->
                                        ok = py:exec(Ctx, <<"def tracked(n):\n"
                                                            "    import sys\n"
                                                            "    try:\n"
                                                            "        yield from range(n)\n"
                                                            "    finally:\n"
                                                            "        sys.modules['_ep_closed'].log += 1\n">>),
                                        {ok, Ref} = py:stream_start('__main__', tracked, [100], #{ctx => Ctx, window => 2}),
                                        receive {py_stream, Ref, {data, 0}} -> ok end,
                                        Self ! {churned, self()}
                                    end) || _ <- lists:seq(1, 100)],
                      [receive {churned, P} -> ok after ?PATIENCE -> ct:fail({stuck, P}) end || P <- Pids]
                  end, lists:seq(1, N div 100))
            end,
    {ok, #{envs_alive := Envs0}} = py_nif:runtime_info(),
    Churn(1000),
    true = py_test_util:wait_until(fun() -> {ok, 1000} =:= py:eval(Ctx, <<"__import__('_ep_closed').log">>) end),
    py_test_util:settle(Envs0),
    {ok, #{streams_alive := Streams0}} = py_nif:runtime_info(),
    Objs0 = py_test_util:python_objects(),
    Churn(10000),
    true = py_test_util:wait_until(fun() -> {ok, 11000} =:= py:eval(Ctx, <<"__import__('_ep_closed').log">>) end),
    py_test_util:settle(Envs0),
    true = py_test_util:wait_until(fun() ->
                                       py_test_util:drain_gc(),
                                       {ok, #{streams_alive := S}} = py_nif:runtime_info(),
                                       S =< Streams0
                                   end),
    Objs1 = py_test_util:python_objects(),
    {ok, #{envs_alive := Envs1, streams_alive := Streams1}} = py_nif:runtime_info(),
    ct:pal("10,000 streams started and left: envs ~b -> ~b, streams ~b -> ~b, Python objects ~b -> ~b",
           [Envs0, Envs1, Streams0, Streams1, Objs0, Objs1]),
    true = Objs1 - Objs0 < 200.

%% ---------------------------------------------------------------------------
%% Found in review

%% An Erlang function that Python waits for streams from the very context
%% waiting: the stream's steps run nested there (they would otherwise queue
%% behind the wait for ever), with or without a window, while unrelated
%% calls are queued.
stream_inside_a_callback(Config) ->
    Ctx = ctx(Config),
    ok = py:register_function(async_suite_streams, fun([N]) ->
                                                           {ok, Items} = py:stream(Ctx, builtins, range, [N], #{}),
                                                           {ok, Ref} = py:stream_start(builtins, range, [3],
                                                                                       #{ctx => Ctx, window => 1}),
                                                           Windowed = [receive {py_stream, Ref, {data, I}} ->
                                                                                   ok = py:stream_ack(Ref), I
                                                                       end || _ <- [1, 2, 3]],
                                                           receive {py_stream, Ref, done} -> ok end,
                                                           {length(Items), Windowed}
                                                   end),
    Self = self(),
    Gate = py_test_util:gate(Config, Ctx),
    spawn(fun() -> Self ! {outer, py:eval(Ctx, <<"__import__('test_gate').wait(g) or __import__('erlang').async_suite_streams(200)">>,
                                          #{g => Gate})} end),
    true = busy(Ctx),
    Others = [py:spawn_call(Ctx, operator, add, [N, 1]) || N <- lists:seq(1, 5)],
    ok = py_test_util:open_gate(Gate),
    receive {outer, R} -> {ok, {200, [0, 1, 2]}} = R after ?PATIENCE -> ct:fail(deadlocked) end,
    [{ok, _} = py:await(O) || O <- Others],
    py:unregister_function(async_suite_streams).

%% A stream whose owner is dead when it starts is cancelled at once and
%% freed: it does not hold itself alive.
stream_of_a_dead_owner(Config) ->
    Ctx = ctx(Config),
    Dead = spawn(fun() -> ok end),
    MRef = monitor(process, Dead),
    receive {'DOWN', MRef, _, _, _} -> ok end,
    py_test_util:drain_gc(),
    Before = streams_alive(),
    _ = [{ok, _} = py:stream_start(builtins, range, [10], #{ctx => Ctx, owner => Dead}) || _ <- lists:seq(1, 50)],
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), streams_alive() =< Before end),
    {ok, 1} = py:eval(Ctx, <<"1">>).

streams_alive() ->
    {ok, #{streams_alive := N}} = py_nif:runtime_info(),
    N.

%% What py_callbacks does when it cannot finish a relayed item: the stream
%% ends with the error, its generator is closed, and nothing follows.
stream_failed_from_outside(Config) ->
    Ctx = ctx(Config),
    closing_tracker(Ctx),
    {ok, Ref} = py:stream_start('__main__', tracked, [1000], #{ctx => Ctx, window => 1}),
    receive {py_stream, Ref, {data, 0}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    ok = py_nif:stream_fail(Ref, relay_failed),
    receive {py_stream, Ref, E} -> {error, relay_failed} = E after ?PATIENCE -> ct:fail(not_ended) end,
    true = py_test_util:wait_until(fun() -> {ok, 1} =:= py:eval(Ctx, <<"len(__import__('_ep_closed').log)">>) end),
    ok = py:stream_ack(Ref),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    receive {py_stream, Ref, _} = Late -> ct:fail({after_the_end, Late}) after 0 -> ok end,
    {error, {badarg, ref}} = py_nif:stream_fail(make_ref(), x).

%% Code that catches the interrupt and goes on is not interrupted again:
%% later Erlang calls of the same request work, and it answers its value.
interrupt_caught_then_calls_work(Config) ->
    Ctx = ctx(Config),
    Self = self(),
    ok = py:register_function(async_suite_add, fun([A, B]) -> A + B end),
    ok = py:register_function(async_suite_wait, fun(_) -> Self ! {waiting, self()}, receive go -> waited end end),
    ok = py:exec(Ctx, <<"
import erlang
def catches_in_code(pid):
    try:
        erlang.send(pid, 'spinning')
        while True:
            pass
    except erlang.Interrupted:
        pass
    return erlang.async_suite_add(1, 2)
def catches_in_call():
    try:
        erlang.async_suite_wait()
    except erlang.Interrupted:
        pass
    return erlang.async_suite_add(3, 4)
">>),
    InCode = py:spawn_call(Ctx, '__main__', catches_in_code, [Self]),
    receive <<"spinning">> -> ok after ?PATIENCE -> ct:fail(not_spinning) end,
    ok = py:interrupt(Ctx),
    {ok, 3} = py:await(InCode, ?PATIENCE),
    InCall = py:spawn_call(Ctx, '__main__', catches_in_call, []),
    receive {waiting, _} -> ok after ?PATIENCE -> ct:fail(no_callback) end,
    ok = py:interrupt(Ctx),
    {ok, 7} = py:await(InCall, ?PATIENCE),
    [py:unregister_function(N) || N <- [async_suite_add, async_suite_wait]].

%% An async generator interrupted while it awaits (the interrupt lands in
%% the loop's own code): the stream ends with {error, interrupted} and the
%% generator's finally still runs.
async_generator_interrupted_while_awaiting(Config) ->
    Ctx = ctx(Config),
    closing_tracker(Ctx),
    ok = py:exec(Ctx, <<"
import asyncio, threading
async def naps():
    try:
        yield 'first'
        await asyncio.sleep(3600)
        yield 'never'
    finally:
        closed_state.log.append(threading.get_ident())
">>),
    {ok, Ref} = py:stream_start('__main__', naps, [], #{ctx => Ctx}),
    receive {py_stream, Ref, {data, <<"first">>}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    true = busy(Ctx),
    ok = py:interrupt(Ctx),
    receive {py_stream, Ref, End} -> {error, interrupted} = End after ?PATIENCE -> ct:fail(not_interrupted) end,
    true = py_test_util:wait_until(fun() -> {ok, 1} =:= py:eval(Ctx, <<"len(__import__('_ep_closed').log)">>) end),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>).

%% The owner (whose env the generator lives in) dies while the context is
%% busy: its env is released and the stream closed, in whichever order the
%% context gets to them; the generator's finally still finds its globals.
owner_exit_keeps_the_generators_globals(Config) ->
    Ctx = ctx(Config),
    Gate = py_test_util:gate(Config, Ctx),
    Self = self(),
    Owner = spawn(fun() ->
                      closing_tracker(Ctx),
                      {ok, Ref} = py:stream_start('__main__', tracked, [1000], #{ctx => Ctx, window => 1}),
                      receive {py_stream, Ref, {data, 0}} -> Self ! started end,
                      receive never -> ok end
                  end),
    receive started -> ok after ?PATIENCE -> ct:fail(not_started) end,
    Busy = py:spawn_call(Ctx, test_gate, wait, [Gate]),
    true = busy(Ctx),
    MRef = monitor(process, Owner),
    exit(Owner, kill),
    receive {'DOWN', MRef, _, _, _} -> ok end,
    py_test_util:drain_gc(),
    ok = py_test_util:open_gate(Gate),
    {ok, none} = py:await(Busy, ?PATIENCE),
    true = py_test_util:wait_until(fun() -> {ok, 1} =:= py:eval(Ctx, <<"len(__import__('_ep_closed').log)">>) end).
