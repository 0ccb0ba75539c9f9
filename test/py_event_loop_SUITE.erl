%% The asyncio event loop driven from Erlang (spec §6): every event-loop
%% snippet of process-bound-envs.md as written, name resolution, errors,
%% timeouts, cancellation, full asyncio, load, killed callers, a loop that
%% misbehaves, and stopping under load.
-module(py_event_loop_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [spec_defining_functions, spec_evaluating_expressions, spec_process_isolation,
     namespace_removed_on_exit, spec_env_reuse, lookup_order, plain_functions_and_awaitables,
     errors_in_coroutines, code_errors, kwargs, await_timeout_keeps_task, run_timeout_cancels_task,
     bad_arguments, stdlib_imports, full_asyncio, tasks_interleave, many_tasks_many_processes,
     killed_caller_tasks_finish, churn_10000_processes, python_calls_erlang_from_tasks, self_is_the_caller, results_convert,
     system_exit_in_task, stray_loop_stop, spawn_task_failures_are_logged, idle_loop_sleeps,
     subinterpreter_env_refused, nif_argument_errors, large_arguments, stop_answers_everyone,
     owner_death_stops_loop, lookup_survives_context_stop, cancelled_then_stopped,
     stubborn_code_at_stop, stuck_loop_interrupted_at_stop, restart_under_load].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    py_test_util:flush(),
    ok.

%% Runs Fun in a fresh process (fresh namespaces) and returns its result.
in_process(Fun) ->
    {Pid, MRef} = spawn_monitor(fun() -> exit({done, Fun()}) end),
    receive
        {'DOWN', MRef, process, Pid, {done, Result}} -> Result;
        {'DOWN', MRef, process, Pid, Other} -> error({process_failed, Other})
    end.

loop_ref() ->
    {ok, Loop} = py_event_loop:get_loop(),
    py_event_loop:get_nif_ref(Loop).

%% ---------------------------------------------------------------------------
%% The snippets of process-bound-envs.md, as written

spec_defining_functions(_Config) ->
    %% Get the event loop reference
    {ok, Loop} = py_event_loop:get_loop(),
    LoopRef = py_event_loop:get_nif_ref(Loop),
    %% Define a function in this process's namespace
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
async def my_async_function(x):
    await asyncio.sleep(0.1)
    return x * 2
counter = 0
async def increment_and_get():
    global counter
    counter += 1
    return counter
">>),
    %% Call the function via create_task - uses __main__ module
    {ok, Ref} = py_event_loop:create_task(Loop, '__main__', my_async_function, [21]),
    {ok, 42} = py_event_loop:await(Ref),
    %% State persists across calls
    {ok, Ref1} = py_event_loop:create_task(Loop, '__main__', increment_and_get, []),
    {ok, 1} = py_event_loop:await(Ref1),
    {ok, Ref2} = py_event_loop:create_task(Loop, '__main__', increment_and_get, []),
    {ok, 2} = py_event_loop:await(Ref2).

spec_evaluating_expressions(_Config) ->
    LoopRef = loop_ref(),
    %% Evaluate expressions in the process's namespace
    {ok, 42} = py_nif:event_loop_eval(LoopRef, <<"21 * 2">>),
    %% Access variables defined via exec
    ok = py_nif:event_loop_exec(LoopRef, <<"result = 'computed'">>),
    {ok, <<"computed">>} = py_nif:event_loop_eval(LoopRef, <<"result">>).

spec_process_isolation(_Config) ->
    {ok, Loop} = py_event_loop:get_loop(),
    LoopRef = py_event_loop:get_nif_ref(Loop),
    Self = self(),
    %% Process A defines x
    spawn(fun() ->
        ok = py_nif:event_loop_exec(LoopRef, <<"x = 'A'">>),
        {ok, <<"A">>} = py_nif:event_loop_eval(LoopRef, <<"x">>),
        Self ! {a, py_nif:event_loop_eval(LoopRef, <<"x">>)}
    end),
    %% Process B has its own x
    spawn(fun() ->
        ok = py_nif:event_loop_exec(LoopRef, <<"x = 'B'">>),
        {ok, <<"B">>} = py_nif:event_loop_eval(LoopRef, <<"x">>),
        Self ! {b, py_nif:event_loop_eval(LoopRef, <<"x">>)}
    end),
    {ok, <<"A">>} = receive {a, A} -> A after ?PATIENCE -> error(a_timeout) end,
    {ok, <<"B">>} = receive {b, B} -> B after ?PATIENCE -> error(b_timeout) end,
    %% ... and the test process has none
    {error, {'NameError', _}} = py_nif:event_loop_eval(LoopRef, <<"x">>).

namespace_removed_on_exit(_Config) ->
    LoopRef = loop_ref(),
    ok = py:exec(<<"import sys\nsys._ep_loop_deleted = []">>),
    {ok, #{envs_alive := Before}} = py_nif:runtime_info(),
    in_process(fun() ->
        ok = py_nif:event_loop_exec(LoopRef, <<"
import sys
class Tracked:
    def __del__(self):
        sys._ep_loop_deleted.append('gone')
tracked = Tracked()
">>)
    end),
    py_test_util:drain_gc(),
    %% __del__ ran on the owner thread, with its globals still there
    true = py_test_util:wait_until(
             fun() -> {ok, [<<"gone">>]} =:= py:eval(<<"__import__('sys')._ep_loop_deleted">>) end),
    true = py_test_util:wait_until(
             fun() -> {ok, #{envs_alive := N}} = py_nif:runtime_info(), N =< Before end).

spec_env_reuse(_Config) ->
    Self = self(),
    ok = in_process(fun() ->
        %% Create a context and define an async function
        Ctx = py:context(1),
        ok = py:exec(Ctx, <<"
import asyncio
async def process_data(items):
    results = []
    for item in items:
        await asyncio.sleep(0.001)
        results.append(item * 2)
    return results
">>),
        %% Call it directly - env is reused automatically
        {ok, [2,4,6]} = py_event_loop:run('__main__', process_data, [[1,2,3]]),
        %% Also works with create_task and spawn_task
        Ref = py_event_loop:create_task('__main__', process_data, [[4,5,6]]),
        {ok, [8,10,12]} = py_event_loop:await(Ref),
        %% Fire-and-forget
        ok = py_event_loop:spawn_task('__main__', process_data, [[7,8,9]]),
        %% The spawned task really runs: one that reports back
        ok = py:exec(Ctx, <<"
import erlang
async def report(pid, items):
    erlang.send(pid, ('processed', await process_data(items)))
">>),
        ok = py_event_loop:spawn_task('__main__', report, [Self, [7,8,9]])
    end),
    receive {<<"processed">>, [14,16,18]} -> ok after ?PATIENCE -> error(spawned_task_did_not_run) end.

lookup_order(_Config) ->
    LoopRef = loop_ref(),
    ok = py:exec(<<"import __main__\n__main__.ep_where = lambda: 'real __main__'">>),
    in_process(fun() ->
        {ok, <<"real __main__">>} = py_event_loop:run('__main__', ep_where, []),
        ok = py_nif:event_loop_exec(LoopRef, <<"def ep_where(): return 'loop namespace'">>),
        {ok, <<"loop namespace">>} = py_event_loop:run('__main__', ep_where, []),
        ok = py:exec(py:context(1), <<"def ep_where(): return 'py:exec env'">>),
        {ok, <<"py:exec env">>} = py_event_loop:run('__main__', ep_where, []),
        %% builtins come last
        {ok, 3} = py_event_loop:run('__main__', len, [[1, 2, 3]]),
        %% modules and dotted names
        {ok, <<"a/b">>} = py_event_loop:run(os, 'path.join', [<<"a">>, <<"b">>]),
        ok
    end),
    ok = py:exec(<<"import __main__\ndel __main__.ep_where">>).

plain_functions_and_awaitables(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
def plain(x):
    return x + 1
async def suspends(x):
    await asyncio.sleep(0.01)
    return x + 2
def future(x):
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, fut.set_result, x + 3)
    return fut
def coroutine_object(x):
    return suspends(x)
async def current_task_is_set():
    return asyncio.current_task() is not None
">>),
    {ok, 2} = py_event_loop:run('__main__', plain, [1]),
    {ok, 3} = py_event_loop:run('__main__', suspends, [1]),
    {ok, 4} = py_event_loop:run('__main__', future, [1]),
    {ok, 3} = py_event_loop:run('__main__', coroutine_object, [1]),
    {ok, true} = py_event_loop:run('__main__', current_task_is_set, []).

errors_in_coroutines(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
async def fails_later(msg):
    await asyncio.sleep(0.01)
    raise ValueError(msg)
async def fails_at_once():
    raise KeyError('k')
def plain_fails():
    return 1 / 0
async def cancelled_inside():
    raise asyncio.CancelledError()
">>),
    {error, {'ValueError', <<"boom">>}} = py_event_loop:run('__main__', fails_later, [<<"boom">>]),
    {match, _} = re:run(py:last_traceback(), <<"fails_later">>),
    {ok, Ref} = py_event_loop:create_task(loop(), '__main__', fails_at_once, []),
    {error, {'KeyError', <<"'k'">>}} = py_event_loop:await(Ref),
    {error, {'ZeroDivisionError', _}} = py_event_loop:run('__main__', plain_fails, []),
    {error, {'CancelledError', _}} = py_event_loop:run('__main__', cancelled_inside, []),
    {error, {'NameError', _}} = py_event_loop:run('__main__', not_defined_anywhere, []),
    {error, {'ModuleNotFoundError', _}} = py_event_loop:run(no_such_module_xyz, f, []),
    {error, {'TypeError', _}} = py_event_loop:run('__main__', plain_fails, [1, 2]).

loop() ->
    {ok, Loop} = py_event_loop:get_loop(),
    Loop.

code_errors(_Config) ->
    LoopRef = loop_ref(),
    {error, {'SyntaxError', _}} = py_nif:event_loop_exec(LoopRef, <<"def (">>),
    {error, {'NameError', _}} = py_nif:event_loop_eval(LoopRef, <<"undefined_name_here">>),
    {error, {'SyntaxError', _}} = py_nif:event_loop_eval(LoopRef, <<"x = 1">>),
    {error, {badarg, code}} = py_nif:event_loop_exec(LoopRef, "not a binary"),
    {error, {badarg, loop}} = py_nif:event_loop_exec(make_ref(), <<"x = 1">>),
    %% the namespace still works
    ok = py_nif:event_loop_exec(LoopRef, <<"y = 5">>),
    {ok, 5} = py_nif:event_loop_eval(LoopRef, <<"y">>).

kwargs(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
async def greet(name, greeting='hello', punct='!'):
    return f'{greeting} {name}{punct}'
">>),
    Ref = py_event_loop:create_task('__main__', greet, [<<"joe">>], #{greeting => <<"hi">>}),
    {ok, <<"hi joe!">>} = py_event_loop:await(Ref),
    {ok, <<"hey ann?">>} = py_event_loop:run('__main__', greet, [<<"ann">>],
                                              #{kwargs => #{<<"greeting">> => <<"hey">>, punct => <<"?">>}}),
    {error, {'TypeError', _}} = py_event_loop:run('__main__', greet, [<<"x">>], #{kwargs => #{nope => 1}}).

await_timeout_keeps_task(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
release = asyncio.Event()
async def slow(x):
    await release.wait()
    return x
">>),
    {ok, Ref} = py_event_loop:create_task(loop(), '__main__', slow, [7]),
    {error, timeout} = py_event_loop:await(Ref, 20),
    ok = py_nif:event_loop_exec(LoopRef, <<"release.set()">>),
    %% the task went on: its answer is still there to await
    {ok, 7} = py_event_loop:await(Ref, ?PATIENCE),
    {error, {badarg, timeout}} = py_event_loop:await(Ref, -1),
    {error, {badarg, ref}} = py_event_loop:await(not_a_ref, 10).

run_timeout_cancels_task(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
state = []
async def slow():
    try:
        await asyncio.Event().wait()  # for ever, unless cancelled
        state.append('finished')
    except asyncio.CancelledError:
        state.append('cancelled')
        raise
">>),
    {error, timeout} = py_event_loop:run('__main__', slow, [], #{timeout => 30}),
    true = py_test_util:wait_until(
             fun() -> {ok, [<<"cancelled">>]} =:= py_nif:event_loop_eval(LoopRef, <<"state">>) end),
    %% the task is over and no answer was sent for it
    true = py_test_util:wait_until(fun() -> {ok, #{tasks_awaited := T}} = py_event_loop:info(), T =:= 0 end),
    receive Stray -> error({stray_message, Stray}) after 0 -> ok end.

bad_arguments(_Config) ->
    {error, {badarg, args}} = py_event_loop:run(math, sqrt, not_a_list),
    {error, {badarg, args}} = py_event_loop:run(math, sqrt, [1 | 2]),
    {error, {badarg, module}} = py_event_loop:run("math", sqrt, [1]),
    {error, {badarg, function}} = py_event_loop:run(math, 42, [1]),
    {error, {badarg, timeout}} = py_event_loop:run(math, sqrt, [1], #{timeout => soon}),
    {error, {badarg, kwargs}} = py_event_loop:run(math, sqrt, [1], #{kwargs => [a]}),
    {error, {badarg, {option, timout}}} = py_event_loop:run(math, sqrt, [1], #{timout => 5}),
    {error, {badarg, options}} = py_event_loop:run(math, sqrt, [1], [{timeout, 5}]),
    %% the Ref-returning forms answer through await
    Ref = py_event_loop:create_task(math, sqrt, not_a_list),
    {error, {badarg, args}} = py_event_loop:await(Ref, ?PATIENCE),
    Ref2 = py_event_loop:create_task(math, sqrt, [1], not_a_map),
    {error, {badarg, kwargs}} = py_event_loop:await(Ref2, ?PATIENCE),
    {error, {badarg, args}} = py_event_loop:spawn_task(math, sqrt, oops),
    {error, {badarg, args}} = py_event_loop:create_task(loop(), math, sqrt, oops),
    %% a term Python cannot take
    {error, {unsupported_term, _}} = py_event_loop:run(builtins, repr, [fun() -> ok end]).

stdlib_imports(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import math, json, asyncio, decimal, sqlite3
async def use_them():
    db = sqlite3.connect(':memory:')
    db.execute('create table t (x)')
    db.execute('insert into t values (?)', (str(decimal.Decimal('1.1') + decimal.Decimal('2.2')),))
    value = db.execute('select x from t').fetchone()[0]
    await asyncio.sleep(0)
    return json.dumps({'sum': value, 'sqrt': math.sqrt(16)})
">>),
    {ok, <<"{\"sum\": \"3.3\", \"sqrt\": 4.0}">>} = py_event_loop:run('__main__', use_them, []).

full_asyncio(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio, time
async def gathered():
    async def one(i):
        await asyncio.sleep(0.01 * i)
        return i
    return await asyncio.gather(*(one(i) for i in range(5)))
async def wait_for_times_out():
    try:
        await asyncio.wait_for(asyncio.sleep(5), 0.02)
    except asyncio.TimeoutError:
        return 'timed out'
async def in_executor():
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: (time.sleep(0.01), 'from a thread')[1])
async def echo_over_loopback():
    async def handle(reader, writer):
        data = await reader.readline()
        writer.write(data.upper())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(b'hello loop\\n')
    await writer.drain()
    line = await reader.readline()
    writer.close()
    server.close()
    await server.wait_closed()
    return line
async def queues():
    q = asyncio.Queue()
    async def producer():
        for i in range(3):
            await q.put(i)
    asyncio.get_running_loop().create_task(producer())
    return [await q.get() for _ in range(3)]
">>),
    {ok, [0, 1, 2, 3, 4]} = py_event_loop:run('__main__', gathered, []),
    {ok, <<"timed out">>} = py_event_loop:run('__main__', wait_for_times_out, []),
    {ok, <<"from a thread">>} = py_event_loop:run('__main__', in_executor, []),
    {ok, <<"HELLO LOOP\n">>} = py_event_loop:run('__main__', echo_over_loopback, []),
    {ok, [0, 1, 2]} = py_event_loop:run('__main__', queues, []).

%% 1000 tasks that each wait until all 1000 have started: they can only
%% finish if the loop interleaves them (how fast is for bench/).
tasks_interleave(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
started = 0
all_started = asyncio.Event()
async def barrier(n):
    global started
    started += 1
    if started == n:
        all_started.set()
    await all_started.wait()
    await asyncio.sleep(0.1)
    return started
">>),
    Refs = [py_event_loop:create_task('__main__', barrier, [1000]) || _ <- lists:seq(1, 1000)],
    Results = [py_event_loop:await(R, ?PATIENCE) || R <- Refs],
    [{ok, 1000}] = lists:usort(Results).

many_tasks_many_processes(_Config) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                           Refs = [{I, py_event_loop:create_task(operator, mul, [P, I])} || I <- lists:seq(1, 100)],
                           Bad = [{I, R} || {I, Ref} <- Refs, {ok, V} = R <- [py_event_loop:await(Ref, ?PATIENCE)],
                                            V =/= P * I],
                           Self ! {done, self(), Bad}
                       end) || P <- lists:seq(1, 100)],
    [receive {done, Pid, Bad} -> [] = Bad after ?PATIENCE -> error(timeout) end || Pid <- Pids],
    true = py_test_util:wait_until(fun() -> {ok, #{tasks_awaited := T}} = py_event_loop:info(), T =:= 0 end).

killed_caller_tasks_finish(_Config) ->
    LoopRef = loop_ref(),
    ok = py:exec(<<"import sys\nsys._ep_finished = 0">>),
    {ok, #{envs_alive := EnvsBefore}} = py_nif:runtime_info(),
    Self = self(),
    Pid = spawn(fun() ->
        ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio, sys
async def work():
    await asyncio.sleep(0.2)
    sys._ep_finished += 1
    return 'done'
">>),
        _ = [py_event_loop:create_task('__main__', work, []) || _ <- lists:seq(1, 100)],
        Self ! started,
        receive never -> ok end
    end),
    receive started -> ok end,
    exit(Pid, kill),
    %% the tasks run to completion; their answers go nowhere
    true = py_test_util:wait_until(fun() -> {ok, 100} =:= py:eval(<<"__import__('sys')._ep_finished">>) end),
    true = py_test_util:wait_until(fun() -> {ok, #{tasks_awaited := T}} = py_event_loop:info(), T =:= 0 end),
    py_test_util:drain_gc(),
    true = py_test_util:wait_until(
             fun() -> {ok, #{envs_alive := N}} = py_nif:runtime_info(), N =< EnvsBefore end).

%% 10,000 short-lived processes, each with a loop namespace and a task:
%% namespaces and Python objects do not pile up.
churn_10000_processes(_Config) ->
    LoopRef = loop_ref(),
    Churn = fun(N) ->
                    Self = self(),
                    lists:foreach(
                      fun(_) ->
                              Pids = [spawn(fun() ->
                                                ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
data = list(range(100))
async def total():
    await asyncio.sleep(0)
    return sum(data)
">>),
                                                {ok, 4950} = py_event_loop:run('__main__', total, []),
                                                Self ! {churned, self()}
                                            end) || _ <- lists:seq(1, 100)],
                              [receive {churned, P} -> ok after ?PATIENCE -> error({stuck, P}) end || P <- Pids]
                      end, lists:seq(1, N div 100))
            end,
    _ = py_test_util:python_objects(),  % this process's own env exists before counting
    {ok, #{envs_alive := Envs0}} = py_nif:runtime_info(),
    Churn(1000),
    py_test_util:settle(Envs0),
    Objs0 = py_test_util:python_objects(),
    Churn(10000),
    py_test_util:settle(Envs0),
    {ok, #{envs_alive := Envs1}} = py_nif:runtime_info(),
    Objs1 = py_test_util:python_objects(),
    ct:pal("10,000 processes on the loop: envs ~b -> ~b, Python objects ~b -> ~b", [Envs0, Envs1, Objs0, Objs1]),
    true = Objs1 - Objs0 < 200.

python_calls_erlang_from_tasks(_Config) ->
    LoopRef = loop_ref(),
    %% The Erlang function may use the loop itself: the loop is not blocked.
    ok = py:register_function(loop_add, fun([A, B]) ->
                                                {ok, S} = py_nif:event_loop_eval(LoopRef, <<"1 + 1">>),
                                                A + B + S - 2
                                        end),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio, erlang
async def adds(a, b):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, erlang.call, 'loop_add', a, b)
async def blocks_the_loop(a, b):
    return erlang.loop_add(a, b)
async def sends(pid, term):
    await asyncio.sleep(0)
    erlang.send(pid, ('from_loop', term))
    return 'sent'
">>),
    {ok, 5} = py_event_loop:run('__main__', adds, [2, 3]),
    %% a blocking call on the loop thread is refused, not left to stall it
    {error, {'RuntimeError', Msg}} = py_event_loop:run('__main__', blocks_the_loop, [2, 3]),
    {match, _} = re:run(Msg, "run_in_executor"),
    {ok, <<"sent">>} = py_event_loop:run('__main__', sends, [self(), #{k => [1, 2]}]),
    receive {<<"from_loop">>, #{<<"k">> := [1, 2]}} -> ok after ?PATIENCE -> error(no_message) end,
    py:unregister_function(loop_add).

%% erlang.self() in loop code is the process the job was started for, in
%% every step of its task and in the tasks it makes.
self_is_the_caller(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio, erlang
at_exec = erlang.self()
async def who():
    await asyncio.sleep(0.01)
    return erlang.self()
async def who_in_a_subtask():
    return await asyncio.get_running_loop().create_task(who())
def who_now():
    return erlang.self()
import __main__
__main__.ep_who = who  # for the other processes below
">>),
    Self = self(),
    {ok, Self} = py_nif:event_loop_eval(LoopRef, <<"at_exec">>),
    {ok, Self} = py_event_loop:run('__main__', who, []),
    {ok, Self} = py_event_loop:run('__main__', who_in_a_subtask, []),
    {ok, Self} = py_event_loop:run('__main__', who_now, []),
    %% many processes at once, each sees itself
    Parent = self(),
    Pids = [spawn_link(fun() ->
                           Me = self(),
                           Refs = [py_event_loop:create_task('__main__', ep_who, []) || _ <- lists:seq(1, 20)],
                           Parent ! {seen, Me, lists:usort([py_event_loop:await(R) || R <- Refs])}
                       end) || _ <- lists:seq(1, 20)],
    [receive {seen, P, Seen} -> [{ok, P}] = Seen end || P <- Pids],
    {ok, Self} = py_event_loop:run(erlang, self, []),
    %% a thread of the loop's executor works for nobody
    ok = py_nif:event_loop_exec(LoopRef, <<"
async def who_in_executor():
    def ask():
        try:
            return erlang.self()
        except RuntimeError:
            return 'nobody'
    return await asyncio.get_running_loop().run_in_executor(None, ask)
">>),
    {ok, <<"nobody">>} = py_event_loop:run('__main__', who_in_executor, []),
    %% asyncio.to_thread copies the task's context, and with it the caller
    ok = py_nif:event_loop_exec(LoopRef, <<"
async def who_to_thread():
    return await asyncio.to_thread(erlang.self)
">>),
    {ok, Self} = py_event_loop:run('__main__', who_to_thread, []).

%% A '__main__' lookup runs Python (a key's __eq__) that stops the context
%% owning the next namespace to look in: that namespace stays valid (empty)
%% until the lookup is done.
lookup_survives_context_stop(_Config) ->
    {ok, C1} = py_context:start_link(lookup_c1, worker),
    {ok, C2} = py_context:start_link(lookup_c2, worker),
    unlink(C1),
    unlink(C2),
    ok = py:exec(<<"import sys, threading\nsys._ep_c2_stopped = threading.Event()">>),
    try
        in_process(fun() ->
            Helper = spawn(fun() ->
                               receive <<"stop_c2">> -> ok = py_context:stop(C2) end,
                               ok = py:exec(<<"__import__('sys')._ep_c2_stopped.set()">>)
                           end),
            put(py_context, C1),  %% C1's env is looked up first
            ok = py:exec(C2, <<"def target(): return 'from C2'">>),
            ok = py:exec(C1, <<"
import time, sys, erlang
def _evil():
    return 'read through a freed dict'
class K:
    fired = False
    def __hash__(self):
        return hash('target')
    def __eq__(self, other):
        if not K.fired:
            K.fired = True
            erlang.send(HELPER, 'stop_c2')
            sys._ep_c2_stopped.wait(60)
            sys._ep_reuse = [{'target': _evil} for _ in range(1000)]
        return False
globals()[K()] = 1
">>),
            {ok, _} = py:eval(C1, <<"globals().__setitem__('HELPER', h)">>, #{h => Helper}),
            {error, {'NameError', _}} = py_event_loop:run('__main__', target, [], #{timeout => 10000}),
            ok
        end)
    after
        py_context:stop(C1),
        py_context:stop(C2),
        py:exec(<<"import sys\nsys.__dict__.pop('_ep_reuse', None)\nsys.__dict__.pop('_ep_c2_stopped', None)">>)
    end.

results_convert(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
async def big_dict(n):
    return {i: str(i) for i in range(n)}
async def opaque():
    class Thing:
        size = 3
    return Thing()
async def bignum():
    return 2 ** 200
">>),
    {ok, Big} = py_event_loop:run('__main__', big_dict, [500]),
    500 = map_size(Big),
    <<"499">> = maps:get(499, Big),
    {ok, Handle} = py_event_loop:run('__main__', opaque, []),
    true = py:is_handle(Handle),
    {ok, 3} = py:getattr(Handle, size),
    {ok, N} = py_event_loop:run('__main__', bignum, []),
    N = 1 bsl 200.

%% SystemExit and KeyboardInterrupt escape asyncio's loop: the caller gets
%% the error, the loop is run again.
system_exit_in_task(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio, sys
async def exits():
    await asyncio.sleep(0)
    sys.exit(3)
async def interrupts():
    raise KeyboardInterrupt()
">>),
    {error, {'SystemExit', _}} = py_event_loop:run('__main__', exits, []),
    {error, {'KeyboardInterrupt', _}} = py_event_loop:run('__main__', interrupts, []),
    {ok, 4.0} = py_event_loop:run(math, sqrt, [16]),
    {ok, #{running := true}} = py_event_loop:info().

stray_loop_stop(_Config) ->
    LoopRef = loop_ref(),
    ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio
async def stops_loop():
    asyncio.get_running_loop().stop()
    return 'asked'
async def closes_loop():
    asyncio.get_running_loop().close()
">>),
    {ok, <<"asked">>} = py_event_loop:run('__main__', stops_loop, []),
    {ok, 4.0} = py_event_loop:run(math, sqrt, [16]),
    {error, {'RuntimeError', _}} = py_event_loop:run('__main__', closes_loop, []),
    {ok, 5.0} = py_event_loop:run(math, sqrt, [25]).

spawn_task_failures_are_logged(_Config) ->
    ok = py_test_util:capture_logs(?MODULE, fun(Meta) -> element(1, maps:get(mfa, Meta, {x})) =:= py_event_loop end),
    try
        LoopRef = loop_ref(),
        ok = py_nif:event_loop_exec(LoopRef, <<"
async def broken():
    raise RuntimeError('spawned and failed')
">>),
        ok = py_event_loop:spawn_task('__main__', broken, []),
        receive
            {logged, warning, Text, _} ->
                {match, _} = re:run(Text, "spawned and failed"),
                {match, _} = re:run(Text, "Traceback")
        after ?PATIENCE ->
            error(nothing_logged)
        end
    after
        logger:remove_handler(?MODULE)
    end.

%% An idle loop sleeps in epoll: its thread uses no CPU.
idle_loop_sleeps(_Config) ->
    {ok, _} = py_event_loop:run(math, sqrt, [4]),
    {ok, #{thread_id := Thread}} = py_event_loop:info(),
    Before = cpu_ticks(Thread),
    timer:sleep(2000),
    After = cpu_ticks(Thread),
    ct:pal("event loop thread CPU over 2 s idle: ~p ticks", [After - Before]),
    true = After - Before =< 1,
    %% and wakes up when work arrives
    {ok, 3.0} = py_event_loop:run(math, sqrt, [9]).

cpu_ticks(Tid) ->
    {ok, Stat} = file:read_file("/proc/self/task/" ++ integer_to_list(Tid) ++ "/stat"),
    %% fields after the command name: utime is the 12th, stime the 13th
    [_, AfterComm] = binary:split(Stat, <<") ">>),
    Fields = binary:split(AfterComm, <<" ">>, [global]),
    binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)).

subinterpreter_env_refused(_Config) ->
    case py_context:start_link(loop_sub, owngil) of
        {error, {_, Why}} ->
            {skip, Why};
        {ok, Ctx} ->
            try
                LoopRef = loop_ref(),
                in_process(fun() ->
                    ok = py:exec(Ctx, <<"async def sub_only(): return 1">>),
                    {error, env_wrong_interpreter} = py_event_loop:run('__main__', sub_only, []),
                    Ref = py_event_loop:create_task('__main__', sub_only, []),
                    {error, env_wrong_interpreter} = py_event_loop:await(Ref),
                    %% names found elsewhere still resolve
                    {ok, 2.0} = py_event_loop:run(math, sqrt, [4]),
                    ok = py_nif:event_loop_exec(LoopRef, <<"async def in_loop(): return 'loop'">>),
                    {ok, <<"loop">>} = py_event_loop:run('__main__', in_loop, []),
                    %% an explicit env of a subinterpreter, given to the loop
                    {ok, SubEnv} = py_context:create_local_env(Ctx),
                    {error, env_wrong_interpreter} =
                        py_nif:event_loop_code(LoopRef, make_ref(), SubEnv, exec, <<"x = 1">>, #{}),
                    ok
                end)
            after
                unlink(Ctx),
                py_context:stop(Ctx)
            end
    end.

%% The loop's owner restarting (a supervisor restart) under load: callers
%% get their answer, {error, event_loop_stopped} or
%% {error, event_loop_not_running}, never a hang or anything else; calls in
%% flight when it goes are answered event_loop_stopped; a new loop serves
%% afterwards.
restart_under_load(_Config) ->
    Self = self(),
    LoopRef = loop_ref(),
    Callers = [spawn_link(fun() -> Self ! {caller, self(), call_until_told(0, #{})} end)
               || _ <- lists:seq(1, 20)],
    InFlight = [spawn_link(fun() ->
                               ok = py_nif:event_loop_exec(LoopRef, <<"
import asyncio, erlang
async def in_flight(pid):
    erlang.send(pid, ('in_flight', erlang.self()))
    await asyncio.Event().wait()
">>),
                               Self ! {in_flight_answer, self(), py_event_loop:run('__main__', in_flight, [Self],
                                                                                    #{timeout => infinity})}
                           end) || _ <- lists:seq(1, 10)],
    [receive {<<"in_flight">>, P} -> ok after ?PATIENCE -> error({not_in_flight, P}) end || P <- InFlight],
    OldPid = whereis(py_event_loop),
    exit(OldPid, kill),
    [receive {in_flight_answer, P, R} -> {error, event_loop_stopped} = R after ?PATIENCE -> error({hung, P}) end
     || P <- InFlight],
    %% until the new loop is up, callers are told it is not running
    true = py_test_util:wait_until(fun() -> {ok, 4.0} =:= py_event_loop:run(math, sqrt, [16]) end),
    [C ! finish || C <- Callers],
    Outcomes = [receive {caller, C, Seen} -> Seen after ?PATIENCE -> error({caller_hung, C}) end || C <- Callers],
    ct:pal("callers saw: ~p", [Outcomes]),
    [] = lists:usort(lists:flatmap(fun maps:keys/1, Outcomes)) -- [ok, event_loop_stopped, event_loop_not_running],
    true = whereis(py_event_loop) =/= OldPid,
    {ok, NewLoop} = py_event_loop:get_loop(),
    already_stopped = py_nif:event_loop_stop(LoopRef),
    true = NewLoop =/= LoopRef,
    #{running := true} = py_nif:event_loop_info(NewLoop),
    #{running := false} = py_nif:event_loop_info(LoopRef).

%% Calls the loop until told to finish; the set of outcomes seen.
call_until_told(N, Seen) ->
    receive
        finish -> Seen
    after 0 ->
        Outcome = case py_event_loop:run(asyncio, sleep, [0.01, N], #{timeout => ?PATIENCE}) of
                      {ok, N} -> ok;
                      {error, Reason} -> Reason;
                      Other -> Other
                  end,
        call_until_told(N + 1, Seen#{Outcome => true})
    end.

nif_argument_errors(_Config) ->
    LoopRef = loop_ref(),
    Tag = make_ref(),
    Env = py_nif:event_loop_env_new(),
    {error, {badarg, op}} = py_nif:event_loop_submit(LoopRef, Tag, bogus, [], math, sqrt, [1], #{}),
    {error, {badarg, env}} = py_nif:event_loop_submit(LoopRef, Tag, task, [not_an_env], '__main__', f, [], #{}),
    {error, {badarg, loop}} = py_nif:event_loop_submit(not_a_loop, Tag, task, [], math, sqrt, [1], #{}),
    {error, {badarg, env}} = py_nif:event_loop_code(LoopRef, Tag, not_an_env, exec, <<"x = 1">>, #{}),
    {error, {badarg, op}} = py_nif:event_loop_code(LoopRef, Tag, Env, bogus, <<"x = 1">>, #{}),
    {error, {badarg, expr}} = py_nif:event_loop_code(LoopRef, Tag, Env, eval, not_code, #{}),
    {error, {badarg, locals}} = py_nif:event_loop_code(LoopRef, Tag, Env, eval, <<"1">>, not_a_map),
    {error, {badarg, loop}} = py_nif:event_loop_stop(make_ref()),
    {error, {badarg, loop}} = py_nif:event_loop_info(self()),
    finished = py_nif:cancel(LoopRef, 1 bsl 60),
    %% a job queued by any of them (each a plain function, answered as it
    %% starts) would have been answered before this one
    {ok, 1.0} = py_event_loop:run(math, sqrt, [1]),
    receive Stray -> error({stray_message, Stray}) after 0 -> ok end.

%% Arguments past ~512 KB are copied on a dirty scheduler; results of any
%% size come back.
large_arguments(_Config) ->
    Big = binary:copy(<<"a">>, 1000000),
    {ok, 1000000} = py_event_loop:run(builtins, len, [Big]),
    Ref = py_event_loop:create_task(builtins, len, [lists:seq(1, 200000)]),
    {ok, 200000} = py_event_loop:await(Ref),
    {ok, Back} = py_event_loop:run(builtins, str, [Big]),
    1000000 = byte_size(Back).

%% A loop of our own, stopped with work in every state: queued, running,
%% refusing to be cancelled, waiting on an executor thread. Everyone is
%% answered, nothing hangs.
stop_answers_everyone(Config) ->
    {Loop, Exec, SubmitWithId} = private_loop(),
    Gate = py_test_util:gate(Config, py:context(1)),
    ok = Exec(<<"
import asyncio, time
async def stubborn():
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
async def in_thread():
    return await asyncio.get_running_loop().run_in_executor(None, time.sleep, 3)
async def sleeper():
    await asyncio.sleep(10)
def blocks(pid, gate):
    import erlang, test_gate
    erlang.send(pid, 'blocking')
    test_gate.wait(gate)
">>),
    Submit = fun(F, Args) -> element(1, SubmitWithId(F, Args)) end,
    Running = [Submit(F, []) || F <- [stubborn, in_thread, sleeper]],
    Blocker = Submit(blocks, [self(), Gate]),
    receive <<"blocking">> -> ok after ?PATIENCE -> error(not_blocking) end,
    %% the loop is blocked until the gate opens: these stay queued
    Queued = [Submit(sleeper, []) || _ <- lists:seq(1, 5)],
    %% stop never waits for Python: it returns with the loop still blocked
    ok = py_nif:event_loop_stop(Loop),
    already_stopped = py_nif:event_loop_stop(Loop),
    ok = py_test_util:open_gate(Gate),
    [{error, event_loop_stopped} = py_call:wait_reply(T, ?PATIENCE) || T <- Queued ++ Running],
    ok = blocker_answered(Blocker),
    {error, event_loop_not_running} = py_nif:event_loop_submit(Loop, make_ref(), task, [], math, sqrt, [1], #{}),
    true = py_test_util:wait_until(fun() -> #{tasks_awaited := 0} = M = py_nif:event_loop_info(Loop),
                                            not map_get(running, M) end),
    %% the application's loop was not touched
    {ok, 2.0} = py_event_loop:run(math, sqrt, [4]).

owner_death_stops_loop(_Config) ->
    Self = self(),
    {Owner, MRef} = spawn_monitor(fun() ->
                                          Tag = make_ref(),
                                          {ok, Loop} = py_nif:event_loop_new(Tag),
                                          receive {Tag, ok} -> ok end,
                                          Self ! {loop, Loop},
                                          receive never -> ok end
                                  end),
    Loop = receive {loop, L} -> L after ?PATIENCE -> error(no_loop) end,
    #{running := true} = py_nif:event_loop_info(Loop),
    exit(Owner, kill),
    receive {'DOWN', MRef, process, Owner, killed} -> ok end,
    true = py_test_util:wait_until(fun() -> not map_get(running, py_nif:event_loop_info(Loop)) end).

%% A private loop, its namespace, and helpers to use them directly.
private_loop() ->
    Tag = make_ref(),
    {ok, Loop} = py_nif:event_loop_new(Tag),
    receive {Tag, ok} -> ok after ?PATIENCE -> error(loop_not_started) end,
    Env = py_nif:event_loop_env_new(),
    Exec = fun(Code) ->
                   T = make_ref(),
                   _ = py_nif:event_loop_code(Loop, T, Env, exec, Code, #{}),
                   py_call:wait_reply(T, ?PATIENCE)
           end,
    Submit = fun(F, Args) ->
                     T = make_ref(),
                     Id = py_nif:event_loop_submit(Loop, T, task, [Env], '__main__', F, Args, #{}),
                     true = is_integer(Id),
                     {T, Id}
             end,
    {Loop, Exec, Submit}.

%% A caller that gave up on a queued task is not answered when the loop
%% stops (its py_call has already returned {error, timeout}).
cancelled_then_stopped(Config) ->
    {Loop, Exec, Submit} = private_loop(),
    Gate = py_test_util:gate(Config, py:context(1)),
    ok = Exec(<<"
import erlang, test_gate
def blocks(pid, gate):
    erlang.send(pid, 'blocking')
    test_gate.wait(gate)
async def quick():
    return 1
">>),
    {Blocker, _} = Submit(blocks, [self(), Gate]),
    receive <<"blocking">> -> ok after ?PATIENCE -> error(not_blocking) end,
    %% the loop is blocked: quick is still queued when cancelled
    {T, Id} = Submit(quick, []),
    cancelled = py_nif:cancel(Loop, Id),
    ok = py_nif:event_loop_stop(Loop),
    ok = py_test_util:open_gate(Gate),
    ok = blocker_answered(Blocker),
    true = py_test_util:wait_until(fun() -> not map_get(running, py_nif:event_loop_info(Loop)) end),
    %% a stopped loop has answered all it will answer
    receive {T, _} = Stray -> error({stray_message, Stray}) after 0 -> ok end.

%% The caller of code blocked at a gate when its loop stopped is answered
%% once: with the result, or erlang.Interrupted should the gate have opened
%% only after the stop's grace (1.5 s) was over.
blocker_answered(Tag) ->
    case py_call:wait_reply(Tag, ?PATIENCE) of
        {ok, none} -> ok;
        {error, {'Interrupted', _}} -> ok
    end.

%% An async generator whose clean-up never ends, and a task that swallows
%% its cancellation: the loop still stops and everyone is answered.
stubborn_code_at_stop(_Config) ->
    {Loop, Exec, Submit} = private_loop(),
    ok = Exec(<<"
import asyncio
async def agen():
    try:
        yield 1
    finally:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass
gens = []
async def start():
    g = agen()
    gens.append(g)
    await g.__anext__()
    return 'started'
async def stubborn(pid):
    import erlang
    erlang.send(pid, 'stubborn')
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
">>),
    {T0, _} = Submit(start, []),
    {ok, <<"started">>} = py_call:wait_reply(T0, ?PATIENCE),
    {T, _} = Submit(stubborn, [self()]),
    receive <<"stubborn">> -> ok after ?PATIENCE -> error(not_running) end,
    ok = py_nif:event_loop_stop(Loop),
    {error, event_loop_stopped} = py_call:wait_reply(T, ?PATIENCE),
    true = py_test_util:wait_until(fun() -> not map_get(running, py_nif:event_loop_info(Loop)) end).

%% Code that never gives the loop back (a coroutine spinning without await)
%% is interrupted once the loop has had its grace to stop: the thread ends,
%% the caller is answered.
stuck_loop_interrupted_at_stop(_Config) ->
    {Loop, Exec, Submit} = private_loop(),
    ok = Exec(<<"
import erlang
async def spins(pid):
    erlang.send(pid, 'spinning')
    n = 0
    while True:
        n += 1
">>),
    {T, _} = Submit(spins, [self()]),
    receive <<"spinning">> -> ok after ?PATIENCE -> error(not_spinning) end,
    #{thread_id := Tid} = py_nif:event_loop_info(Loop),
    ok = py_nif:event_loop_stop(Loop),
    {error, event_loop_stopped} = py_call:wait_reply(T, ?PATIENCE),
    true = py_test_util:wait_until(fun() -> not map_get(running, py_nif:event_loop_info(Loop)) end),
    %% the loop thread is gone, not left spinning
    true = py_test_util:wait_until(
             fun() -> not filelib:is_dir("/proc/self/task/" ++ integer_to_list(Tid)) end).
