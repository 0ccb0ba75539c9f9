%% Isolated contexts (spec §11): Python in an OS process of its own, with
%% the API of every other context, and its crashes contained.
-module(py_isolated_SUITE).
-include_lib("common_test/include/ct.hrl").
-include("py_test.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([calls_errors_and_tracebacks/1, envs_bound_to_processes/1, explicit_envs/1, handles_live_while_held/1,
         any_python_numpy_while_the_nif_runs_another/1, output_and_logging/1, callbacks_reentrant/1,
         send_and_self/1, timeout_stops_the_code/1, interrupt_running_call/1,
         crash_segfault/1, crash_abort/1, crash_exit_status/1, crash_killed_from_outside/1,
         crash_mid_callback/1, crash_while_100_processes_hold_envs/1, memory_limit_enforced/1,
         start_failures/1, python_too_old/1, killed_context_leaves_no_worker/1,
         killed_context_leaves_no_worker_holding_the_gil/1,
         churn_keeps_the_worker_flat/1, pool_of_isolated_contexts_restarts/1,
         ml_predictor_with_scikit_learn_on_debian_python/1,
         crash_mid_stream/1, killed_context_ends_its_streams/1, stream_items_that_are_handles/1,
         stream_churn_10000_processes/1, crash_logged_once/1]).

all() ->
    [{group, contexts}, {group, pool}].

groups() ->
    [{contexts, [],
      [calls_errors_and_tracebacks, envs_bound_to_processes, explicit_envs, handles_live_while_held,
       any_python_numpy_while_the_nif_runs_another, output_and_logging, callbacks_reentrant, send_and_self,
       timeout_stops_the_code, interrupt_running_call, crash_segfault, crash_abort, crash_exit_status,
       crash_killed_from_outside, crash_mid_callback, crash_while_100_processes_hold_envs,
       memory_limit_enforced, start_failures, python_too_old, killed_context_leaves_no_worker,
       killed_context_leaves_no_worker_holding_the_gil,
       churn_keeps_the_worker_flat, crash_mid_stream, killed_context_ends_its_streams,
       stream_items_that_are_handles, stream_churn_10000_processes, crash_logged_once]},
     %% restarts the application with an isolated pool: last
     {pool, [], [pool_of_isolated_contexts_restarts, ml_predictor_with_scikit_learn_on_debian_python]}].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_testcase(Case, Config) ->
    process_flag(trap_exit, false),
    [{case_name, Case} | Config].

end_per_testcase(_Case, _Config) ->
    py_test_util:flush(),
    ok.

%% ---------------------------------------------------------------------------

start(Id) ->
    start(Id, #{}).

start(Id, Opts) ->
    {ok, Ctx} = py_context:start_link(Id, isolated, Opts),
    unlink(Ctx),
    Ctx.

worker_pid(Ctx) ->
    {ok, #{python := #{pid := OsPid}}} = py_context:info(Ctx),
    OsPid.

counts(Ctx) ->
    {ok, #{envs := Envs, handles := Handles}} = py_context:info(Ctx),
    {Envs, Handles}.

%% A process that runs Body on Ctx (with Locals bound), which tells the
%% test it started; its answer comes as {answer, Pid, Result}.
started_call(Ctx, Body) ->
    started_call(Ctx, Body, #{}).

started_call(Ctx, Body, Locals) ->
    Self = self(),
    spawn(fun() ->
                  R = py:eval(Ctx, <<"exec('import erlang\\nerlang.send(t, \\'started\\')\\n' + body, globals())">>,
                              Locals#{t => Self, body => Body}),
                  Self ! {answer, self(), R}
          end).

%% A call that waits at a gate after telling the test it started.
gated(Ctx, Gate) ->
    started_call(Ctx, <<"__import__('test_gate').wait(g)">>, #{g => Gate}).

started() ->
    receive <<"started">> -> ok after ?PATIENCE -> ct:fail(not_started) end.

answer(Pid) ->
    receive {answer, Pid, R} -> R after ?PATIENCE -> ct:fail({no_answer, Pid}) end.

%% Runs Code (which kills the worker) while another caller waits at a gate
%% and a third is queued behind it: all three get the crash.
crash_with_callers(Config, Code, Why) ->
    Ctx = start(?config(case_name, Config)),
    MRef = monitor(process, Ctx),
    Gate = py_test_util:gate(Config, Ctx),
    {ok, Env} = py_context:create_local_env(Ctx),
    Ref = py_context:get_nif_ref(Ctx),
    {ok, H} = py:eval(Ctx, <<"object()">>),
    Waiting = gated(Ctx, Gate),
    started(),
    Self = self(),
    Crasher = spawn(fun() -> Self ! {answer, self(), py:exec(Ctx, Code)} end),
    Queued = spawn(fun() -> Self ! {answer, self(), py:eval(Ctx, <<"1 + 1">>)} end),
    %% the gated call runs; the crasher and the other wait behind it
    true = py_test_util:wait_until(fun() -> {ok, #{queue_length := N}} = py_context:info(Ctx), N =:= 2 end),
    ok = py_test_util:open_gate(Gate),
    %% the gated call answers first; the crasher runs next
    {ok, none} = answer(Waiting),
    Crash = {error, {context_crashed, Why}},
    Crash = answer(Crasher),
    Crash = answer(Queued),
    receive {'DOWN', MRef, process, Ctx, Reason} -> {context_crashed, Why} = Reason
    after ?PATIENCE -> ct:fail(context_still_up)
    end,
    {error, context_not_running} = py:eval(Ctx, <<"1">>),
    {error, context_not_running} = py:getattr(H, '__class__'),
    {error, context_not_running} = py_nif:context_eval(Ref, <<"1">>, #{}, Env),
    %% the rest of the VM carries on
    {ok, 2} = py:eval(<<"1 + 1">>),
    ok.

%% ---------------------------------------------------------------------------

calls_errors_and_tracebacks(Config) ->
    Ctx = start(?config(case_name, Config)),
    ok = py:exec(Ctx, <<"def f(x, y=1):\n    return x * y\n">>),
    {ok, 6} = py:call(Ctx, '__main__', f, [3], #{y => 2}),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {ok, [1, 2, 3]} = py:eval(Ctx, <<"sorted(s)">>, #{s => [3, 1, 2]}),
    {error, {'ZeroDivisionError', <<"division by zero">>}} = py:eval(Ctx, <<"1 / 0">>),
    Traceback = py:last_traceback(),
    {match, _} = re:run(Traceback, <<"ZeroDivisionError">>),
    {error, {'SyntaxError', _}} = py:exec(Ctx, <<"def (">>),
    {error, {'ModuleNotFoundError', _}} = py:call(Ctx, no_such_module, f, []),
    {ok, #{mode := isolated, running := true, python := #{version_info := {3, _, _}}}} = py_context:info(Ctx),
    %% py:info() lists it with the in-process contexts
    #{contexts := Contexts} = py:info(),
    true = lists:any(fun(#{pid := P}) -> P =:= Ctx; (_) -> false end, Contexts),
    ok = py_context:stop(Ctx),
    {error, context_not_running} = py:eval(Ctx, <<"1">>).

envs_bound_to_processes(Config) ->
    Ctx = start(?config(case_name, Config)),
    {Envs0, _} = counts(Ctx),
    Self = self(),
    Pids = [spawn(fun() ->
                          ok = py:exec(Ctx, iolist_to_binary(["x = ", integer_to_list(I)])),
                          Self ! {x, I, py:eval(Ctx, <<"x">>)},
                          receive go -> ok end
                  end) || I <- lists:seq(1, 100)],
    [receive {x, I, R} -> {ok, I} = R after ?PATIENCE -> ct:fail(no_x) end || I <- lists:seq(1, 100)],
    {error, {'NameError', _}} = py:eval(Ctx, <<"x">>),
    {Held, _} = counts(Ctx),
    true = Held >= Envs0 + 100,
    [P ! go || P <- Pids],
    %% each env goes with its process
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {E, _} = counts(Ctx), E =< Envs0 + 1 end),
    ok = py_context:stop(Ctx).

explicit_envs(Config) ->
    Ctx = start(?config(case_name, Config)),
    Ref = py_context:get_nif_ref(Ctx),
    {ok, Env} = py_context:create_local_env(Ctx),
    ok = py_nif:context_exec(Ref, <<"y = 41">>, Env),
    {ok, 42} = py_nif:context_eval(Ref, <<"y + 1">>, #{}, Env),
    %% another process may use it
    Self = self(),
    spawn(fun() -> Self ! {y, py_nif:context_eval(Ref, <<"y">>, #{}, Env)} end),
    receive {y, Y} -> {ok, 41} = Y after ?PATIENCE -> ct:fail(no_y) end,
    %% an env of another context is refused, in either direction
    {ok, Other} = py_context:create_local_env(py:context(1)),
    {error, env_wrong_interpreter} = py_nif:context_eval(Ref, <<"1">>, #{}, Other),
    {error, env_wrong_interpreter} = py_nif:context_eval(py_context:get_nif_ref(py:context(1)), <<"1">>, #{}, Env),
    ok = py_context:stop(Ctx),
    {error, context_not_running} = py_nif:context_eval(Ref, <<"y">>, #{}, Env).

handles_live_while_held(Config) ->
    Ctx = start(?config(case_name, Config)),
    {_, Handles0} = counts(Ctx),
    {ok, H} = py:eval(Ctx, <<"__import__('collections').deque([1, 2])">>),
    true = py:is_handle(H),
    {ok, 2} = py:call_method(H, '__len__', []),
    {ok, S} = py:eval(Ctx, <<"frozenset([2, 1])">>),
    {ok, [1, 2]} = py:to_term(S),
    {ok, <<"deque">>} = py:eval(Ctx, <<"type(h).__name__">>, #{h => H}),
    %% an isolated handle means nothing to an in-process context
    {error, env_wrong_interpreter} = py:eval(<<"h">>, #{h => H}),
    {_, Held} = counts(Ctx),
    true = Held >= Handles0 + 1,
    %% many handles made and dropped by processes that end
    Self = self(),
    [spawn(fun() -> Self ! {made, py:eval(Ctx, <<"[object() for _ in range(10)]">>)} end) || _ <- lists:seq(1, 20)],
    [receive {made, {ok, L}} -> 10 = length(L) after ?PATIENCE -> ct:fail(no_handles) end || _ <- lists:seq(1, 20)],
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {_, N} = counts(Ctx), N =< Held end),
    %% an answer of many handles that its caller may give up on while the
    %% worker writes it: whichever comes first, none of them is kept
    spawn(fun() -> Self ! {gave_up, py:eval(Ctx, <<"[object() for _ in range(200000)]">>, #{}, #{timeout => 50})} end),
    receive {gave_up, _} -> ok after ?PATIENCE -> ct:fail(no_answer) end,
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {_, N} = counts(Ctx), N =< Held end),
    {ok, 2} = py:call_method(H, '__len__', []),
    ok = py_context:stop(Ctx),
    {error, context_not_running} = py:call_method(H, '__len__', []).

any_python_numpy_while_the_nif_runs_another(Config) ->
    Ctx = start(?config(case_name, Config), #{python => "/usr/bin/python3"}),
    {ok, #{python := #{version_info := {3, 11, _}, executable := <<"/usr/bin/python3">>}}} = py_context:info(Ctx),
    {ok, NifVersion} = py:eval(<<"__import__('sys').version_info[:2]">>),
    ct:log("isolated on 3.11 while the NIF runs ~p", [NifVersion]),
    ok = py:exec(Ctx, <<"import numpy as np">>),
    {ok, 15.0} = py:eval(Ctx, <<"float(np.arange(6).sum())">>),
    {ok, [[1.0, 2.0], [3.0, 4.0]]} = py:eval(Ctx, <<"(np.array(v).reshape(2, 2)).tolist()">>, #{v => [1.0, 2.0, 3.0, 4.0]}),
    ok = py_context:stop(Ctx).

output_and_logging(Config) ->
    Ctx = start(?config(case_name, Config)),
    {ok, <<"hello\n">>} = py_test_util:with_group_leader(fun() -> py:exec(Ctx, <<"print('hello')">>) end),
    ok = py_test_util:capture_logs(?MODULE, fun(Meta) -> maps:is_key(python_logger, Meta) end),
    try
        ok = py:exec(Ctx, <<"import logging\nlogging.getLogger('iso').warning('careful %s', 'now')">>),
        receive {logged, warning, <<"careful now">>, #{python_logger := <<"iso">>}} -> ok
        after ?PATIENCE -> ct:fail(not_logged)
        end
    after
        logger:remove_handler(?MODULE)
    end,
    ok = py_context:stop(Ctx).

callbacks_reentrant(Config) ->
    Ctx = start(?config(case_name, Config)),
    Self = self(),
    ok = py:register_function(iso_add, fun([A, B]) -> A + B end),
    %% Erlang called from the worker calls the worker again, and so on
    ok = py:register_function(iso_down, fun([N]) -> Self ! {down, N}, {ok, R} = py:call(Ctx, iso_down, down, [N - 1]), R end),
    try
        {ok, 5} = py:eval(Ctx, <<"__import__('erlang').call('iso_add', 2, 3)">>),
        %% in a module: each Erlang process has its own env
        ok = py:exec(Ctx, <<"import erlang, sys, types\n"
                            "m = types.ModuleType('iso_down')\n"
                            "exec('import erlang\\n'\n"
                            "     'def down(n):\\n'\n"
                            "     '    return \\'bottom\\' if n == 0 else erlang.call(\\'iso_down\\', n)\\n', m.__dict__)\n"
                            "sys.modules['iso_down'] = m\n">>),
        {ok, <<"bottom">>} = py:call(Ctx, iso_down, down, [3]),
        %% exactly once each
        [receive {down, N} -> ok after ?PATIENCE -> ct:fail(no_down) end || N <- [3, 2, 1]],
        receive {down, _} = Extra -> ct:fail({twice, Extra}) after 0 -> ok end,
        {error, {'Error', _}} = py:eval(Ctx, <<"__import__('erlang').call('no_such_function')">>)
    after
        py:unregister_function(iso_add),
        py:unregister_function(iso_down)
    end,
    ok = py_context:stop(Ctx).

send_and_self(Config) ->
    Ctx = start(?config(case_name, Config)),
    Self = self(),
    {ok, Self} = py:eval(Ctx, <<"__import__('erlang').self()">>),
    ok = py:exec(Ctx, <<"import erlang\nerlang.send(erlang.self(), ('hi', [1, 2.5, b'x']))">>),
    receive {<<"hi">>, [1, 2.5, <<"x">>]} -> ok after ?PATIENCE -> ct:fail(not_sent) end,
    register(iso_test_receiver, Self),
    try
        ok = py:exec(Ctx, <<"import erlang\nerlang.send(erlang.whereis('iso_test_receiver'), 'found')">>),
        receive <<"found">> -> ok after ?PATIENCE -> ct:fail(not_found) end
    after
        unregister(iso_test_receiver)
    end,
    ok = py_context:stop(Ctx).

timeout_stops_the_code(Config) ->
    Ctx = start(?config(case_name, Config)),
    ok = py:exec(Ctx, <<"import sys, types\n"
                        "sys.modules['_ep_flag'] = types.ModuleType('_ep_flag')\n"
                        "sys.modules['_ep_flag'].after = False">>),
    {error, timeout} = py:exec(Ctx, <<"import time, _ep_flag\n"
                                      "while True:\n"
                                      "    time.sleep(0.001)\n"
                                      "_ep_flag.after = True">>, #{timeout => 100}),
    %% the loop was stopped (the context serves the next call), and only it
    {ok, false} = py:eval(Ctx, <<"__import__('_ep_flag').after">>),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

interrupt_running_call(Config) ->
    Ctx = start(?config(case_name, Config)),
    not_running = py:interrupt(Ctx),
    Pid = started_call(Ctx, <<"while True: pass">>),
    started(),
    ok = py:interrupt(Ctx),
    {error, interrupted} = answer(Pid),
    %% `except Exception' does not swallow it
    Pid2 = started_call(Ctx, <<"try:\n    while True: pass\nexcept Exception:\n    pass">>),
    started(),
    ok = py:interrupt(Ctx),
    {error, interrupted} = answer(Pid2),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

crash_segfault(Config) ->
    crash_with_callers(Config, <<"import ctypes\nctypes.string_at(0)">>, {signal, 11}).

crash_abort(Config) ->
    crash_with_callers(Config, <<"import os\nos.abort()">>, {signal, 6}).

crash_exit_status(Config) ->
    crash_with_callers(Config, <<"import os\nos._exit(3)">>, {exit_status, 3}).

crash_killed_from_outside(Config) ->
    Ctx = start(?config(case_name, Config)),
    MRef = monitor(process, Ctx),
    OsPid = worker_pid(Ctx),
    Pid = started_call(Ctx, <<"while True: pass">>),
    started(),
    [] = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    {error, {context_crashed, {signal, 9}}} = answer(Pid),
    receive {'DOWN', MRef, process, Ctx, {context_crashed, {signal, 9}}} -> ok
    after ?PATIENCE -> ct:fail(context_still_up)
    end.

crash_mid_callback(Config) ->
    Ctx = start(?config(case_name, Config)),
    Self = self(),
    ok = py:register_function(iso_crash_now, fun([]) -> Self ! in_callback, receive never -> ok end end),
    try
        Pid = spawn(fun() -> Self ! {answer, self(), py:eval(Ctx, <<"__import__('erlang').call('iso_crash_now')">>)} end),
        receive in_callback -> ok after ?PATIENCE -> ct:fail(no_callback) end,
        [] = os:cmd("kill -SEGV " ++ integer_to_list(worker_pid(Ctx))),
        {error, {context_crashed, {signal, 11}}} = answer(Pid)
    after
        py:unregister_function(iso_crash_now)
    end.

crash_while_100_processes_hold_envs(Config) ->
    Ctx = start(?config(case_name, Config)),
    Self = self(),
    Pids = [spawn(fun() ->
                          ok = py:exec(Ctx, <<"x = 1">>),
                          Self ! {ready, self()},
                          receive go -> Self ! {after_crash, self(), py:eval(Ctx, <<"x">>)} end
                  end) || _ <- lists:seq(1, 100)],
    [receive {ready, P} -> ok after ?PATIENCE -> ct:fail(not_ready) end || P <- Pids],
    MRef = monitor(process, Ctx),
    {error, {context_crashed, {exit_status, 7}}} = py:exec(Ctx, <<"import os\nos._exit(7)">>),
    receive {'DOWN', MRef, process, Ctx, _} -> ok after ?PATIENCE -> ct:fail(context_still_up) end,
    [P ! go || P <- Pids],
    [receive {after_crash, P, R} -> {error, context_not_running} = R after ?PATIENCE -> ct:fail(no_answer) end
     || P <- Pids],
    {ok, 2} = py:eval(<<"1 + 1">>).

memory_limit_enforced(Config) ->
    %% numpy's buffers are not Python's allocator: the OS limit covers them
    Ctx = start(?config(case_name, Config), #{python => "/usr/bin/python3", memory_limit => 1024 * 1024 * 1024}),
    ok = py:exec(Ctx, <<"import numpy as np">>),
    {error, {'MemoryError', _}} = py:eval(Ctx, <<"np.ones(2 ** 31).sum()">>),
    {error, {'MemoryError', _}} = py:eval(Ctx, <<"len(bytearray(2 ** 31))">>),
    {ok, 1000000.0} = py:eval(Ctx, <<"float(np.ones(10 ** 6).sum())">>),
    ok = py_context:stop(Ctx).

start_failures(_Config) ->
    {error, {python_not_found, _}} = py_context:start_link(bad, isolated, #{python => "/no/such/python"}),
    {error, {venv_not_found, _}} = py_context:start_link(bad, isolated, #{venv => "/no/such/venv"}),
    {error, {badarg, memory_limit}} = py_context:start_link(bad, isolated, #{memory_limit => -1}),
    {error, {badarg, env}} = py_context:start_link(bad, isolated, #{env => [{<<"A=B">>, <<"c">>}]}),
    {error, {badarg, options}} = py_context:start_link(bad, isolated, #{max_queue => 0}),
    {error, {badarg, options}} = py_context:start_link(bad, isolated, #{max_queue => lots}),
    %% not a Python at all
    {error, {worker_start_failed, _}} = py_context:start_link(bad, isolated, #{python => "/bin/false"}),
    ok.

python_too_old(_Config) ->
    Root = string:trim(os:cmd("pyenv root 2>/dev/null")),
    Old = [P || V <- ["3.8", "3.7", "3.6", "2.7"],
                P <- filelib:wildcard(filename:join([Root, "versions", V ++ ".*", "bin", "python"]))],
    case Old of
        [] ->
            {skip, "no Python older than 3.9 on this machine"};
        [Python | _] ->
            {error, {python_too_old, Version}} = py_context:start_link(old, isolated, #{python => Python}),
            ct:log("~s: ~s", [Python, Version]),
            true = is_binary(Version)
    end.

killed_context_leaves_no_worker(Config) ->
    Ctx = start(?config(case_name, Config)),
    OsPid = worker_pid(Ctx),
    {ok, #{launcher_os_pid := Launcher}} = py_context:info(Ctx),
    true = py_test_util:os_process_alive(OsPid),
    exit(Ctx, kill),
    true = py_test_util:wait_until(fun() -> not py_test_util:os_process_alive(OsPid) andalso not py_test_util:os_process_alive(Launcher) end).

%% Python stuck in C code that holds the GIL cannot read the end of its
%% pipe: the launcher, watching for the hang-up, kills it.
killed_context_leaves_no_worker_holding_the_gil(Config) ->
    Ctx = start(?config(case_name, Config)),
    OsPid = worker_pid(Ctx),
    {ok, #{launcher_os_pid := Launcher}} = py_context:info(Ctx),
    %% ctypes.PyDLL calls keep the GIL: the reader thread cannot run
    _ = started_call(Ctx, <<"import ctypes\nctypes.PyDLL(None).sleep(3600)">>),
    started(),
    exit(Ctx, kill),
    true = py_test_util:wait_until(fun() ->
                                           not py_test_util:os_process_alive(OsPid) andalso
                                               not py_test_util:os_process_alive(Launcher)
                                   end).

churn_keeps_the_worker_flat(Config) ->
    Ctx = start(?config(case_name, Config)),
    OsPid = worker_pid(Ctx),
    {Envs0, _} = counts(Ctx),
    py_test_util:churn(Ctx, 1000),
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {E, _} = counts(Ctx), E =< Envs0 + 1 end),
    Rss0 = py_test_util:rss_kb(OsPid),
    py_test_util:churn(Ctx, 10000),
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {E, _} = counts(Ctx), E =< Envs0 + 1 end),
    Growth = py_test_util:rss_kb(OsPid) - Rss0,
    ct:log("worker RSS after 10,000 processes: ~b KB more", [Growth]),
    true = Growth < 20000,
    ok = py_context:stop(Ctx).

%% ---------------------------------------------------------------------------
%% Streams (spec §9) on an isolated context

naturals(Ctx) ->
    ok = py:exec(Ctx, <<"
import erlang
def naturals():
    i = 0
    while True:
        yield i
        i += 1
def crashes_midway(t):
    yield 'one'
    erlang.send(t, 'started')
    import ctypes
    ctypes.string_at(0)
">>).

stream_end(Ref) ->
    receive {py_stream, Ref, {data, _}} -> stream_end(Ref);
            {py_stream, Ref, End} -> End
    after ?PATIENCE -> ct:fail({stream_stuck, Ref})
    end.

%% The worker dies in one stream's step while another waits at its window:
%% both owners hear of the crash, and nothing else of either stream.
crash_mid_stream(Config) ->
    Ctx = start(?config(case_name, Config)),
    naturals(Ctx),
    {ok, Waiting} = py:stream_start('__main__', naturals, [], #{ctx => Ctx, window => 1}),
    receive {py_stream, Waiting, {data, 0}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
    {ok, Crashing} = py:stream_start('__main__', crashes_midway, [self()], #{ctx => Ctx}),
    Crash = {error, {context_crashed, {signal, 11}}},
    Crash = stream_end(Crashing),
    Crash = stream_end(Waiting),
    ok = py:stream_ack(Waiting),
    ok = py:stream_cancel(Waiting),
    {error, context_not_running} = py:stream_start('__main__', naturals, [], #{ctx => Ctx}),
    {messages, Left} = process_info(self(), messages),
    [] = [M || {py_stream, _, _} = M <- Left],
    {ok, 2} = py:eval(<<"1 + 1">>).

%% A context killed (no terminate runs) still tells its streams' owners.
killed_context_ends_its_streams(Config) ->
    Ctx = start(?config(case_name, Config)),
    naturals(Ctx),
    {ok, Ref} = py:stream_start('__main__', naturals, [], #{ctx => Ctx, window => 2}),
    exit(Ctx, kill),
    {error, {context_crashed, killed}} = stream_end(Ref).

%% Items with no Erlang form come as handles; those of a stream cancelled
%% before its items arrived are dropped by the worker.
stream_items_that_are_handles(Config) ->
    Ctx = start(?config(case_name, Config)),
    ok = py:exec(Ctx, <<"
class Box:
    def __init__(self, n):
        self.n = n
def boxes(n):
    for i in range(n):
        yield Box(i)
">>),
    {ok, [B0, B1, B2]} = py:stream(Ctx, '__main__', boxes, [3], #{}),
    {ok, [0, 1, 2]} = {ok, [element(2, py:getattr(B, n)) || B <- [B0, B1, B2]]},
    {_, Handles0} = counts(Ctx),
    [begin
         {ok, Ref} = py:stream_start('__main__', boxes, [100000], #{ctx => Ctx}),
         receive {py_stream, Ref, {data, _}} -> ok after ?PATIENCE -> ct:fail(stuck) end,
         ok = py:stream_cancel(Ref)
     end || _ <- lists:seq(1, 5)],
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {_, H} = counts(Ctx), H =< Handles0 end),
    {ok, #{streams := 0}} = py_context:info(Ctx),
    ok = py_context:stop(Ctx).

%% 10,000 processes each start a stream in their own env and exit half-way:
%% every generator is closed (its finally ran, its globals still there),
%% and the worker's streams and envs are back where they were.
stream_churn_10000_processes(Config) ->
    Ctx = start(?config(case_name, Config)),
    ok = py:exec(Ctx, <<"import sys, types\nsys.modules['_ep_closed'] = types.ModuleType('_ep_closed')\n"
                        "sys.modules['_ep_closed'].log = 0\n">>),
    {Envs0, _} = counts(Ctx),
    Self = self(),
    lists:foreach(
      fun(_) ->
              Pids = [spawn(fun() ->
                                    ok = py:exec(Ctx, <<"import sys\nclosed = sys.modules['_ep_closed']\n"
                                                        "def tracked(n):\n"
                                                        "    try:\n"
                                                        "        yield from range(n)\n"
                                                        "    finally:\n"
                                                        "        closed.log += 1\n">>),
                                    {ok, Ref} = py:stream_start('__main__', tracked, [100], #{ctx => Ctx, window => 2}),
                                    receive {py_stream, Ref, {data, 0}} -> ok end,
                                    Self ! {churned, self()}
                            end) || _ <- lists:seq(1, 100)],
              [receive {churned, P} -> ok after ?PATIENCE -> ct:fail({stuck, P}) end || P <- Pids]
      end, lists:seq(1, 100)),
    true = py_test_util:wait_until(fun() -> {ok, 10000} =:= py:eval(Ctx, <<"__import__('_ep_closed').log">>) end),
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), {E, _} = counts(Ctx), E =< Envs0 + 1 end),
    {ok, #{streams := 0}} = py_context:info(Ctx),
    ok = py_context:stop(Ctx).

%% Runs Fun on the application restarted with a pool of N isolated
%% contexts with Options, and restores the default pool after.
with_isolated_pool(N, Options, Fun) ->
    ok = application:stop(erlang_python),
    application:set_env(erlang_python, context_mode, isolated),
    application:set_env(erlang_python, num_contexts, N),
    application:set_env(erlang_python, isolated_options, Options),
    try
        ok = py_test_util:start(),
        Fun()
    after
        ok = application:stop(erlang_python),
        application:set_env(erlang_python, context_mode, worker),
        application:unset_env(erlang_python, num_contexts),
        application:unset_env(erlang_python, isolated_options),
        ok = py_test_util:start()
    end.

pool_of_isolated_contexts_restarts(_Config) ->
    with_isolated_pool(2, #{}, fun() ->
        Ctx = py:context(1),
        {ok, #{mode := isolated}} = py_context:info(Ctx),
        ok = py_test_util:capture_logs(iso_pool_crash, fun(_) -> true end),
        {error, {context_crashed, {exit_status, 5}}} = py:exec(Ctx, <<"import os\nos._exit(5)">>),
        %% the supervisor starts it again, and the other carries on
        {ok, 2} = py:eval(py:context(2), <<"1 + 1">>),
        true = py_test_util:wait_until(fun() ->
                                               try py:context(1) of
                                                   New -> New =/= Ctx
                                               catch error:_ -> false
                                               end
                                       end),
        {ok, 4.0} = py:call(py:context(1), math, sqrt, [16]),
        {ok, 3} = py:eval(<<"1 + 2">>),
        %% reported once, by the supervisor that restarted it
        ok = logger:remove_handler(iso_pool_crash),
        [_] = crash_reports({exit_status, 5})
    end).

%% The log events captured that report a crash of reason Why.
crash_reports(Why) ->
    receive
        {logged, _Level, Text, _Meta} ->
            Mentions = binary:match(Text, <<"context_crashed">>) =/= nomatch andalso
                binary:match(Text, iolist_to_binary(io_lib:format("~0p", [Why]))) =/= nomatch,
            case Mentions of
                true -> [Text | crash_reports(Why)];
                false -> crash_reports(Why)
            end
    after 0 ->
        []
    end.

%% A context no supervisor watches reports its own crash, once.
crash_logged_once(Config) ->
    ok = py_test_util:capture_logs(iso_crash, fun(_) -> true end),
    try
        Ctx = start(?config(case_name, Config)),
        MRef = monitor(process, Ctx),
        {error, {context_crashed, {exit_status, 9}}} = py:exec(Ctx, <<"import os\nos._exit(9)">>),
        receive {'DOWN', MRef, process, Ctx, {context_crashed, {exit_status, 9}}} -> ok
        after ?PATIENCE -> ct:fail(context_still_up)
        end,
        [Text] = crash_reports({exit_status, 9}),
        ct:log("~ts", [Text])
    after
        logger:remove_handler(iso_crash)
    end.

%% The seed's ml_predictor, unchanged, on an isolated pool running Debian's
%% Python with its scikit-learn, whatever Python the NIF runs.
ml_predictor_with_scikit_learn_on_debian_python(Config) ->
    ModelPath = list_to_binary(filename:join(?config(priv_dir, Config), "model.pkl")),
    with_isolated_pool(1, #{python => "/usr/bin/python3"}, fun() ->
        {ok, {3, 11, _}} = py:eval(<<"tuple(__import__('sys').version_info[:3])">>),
        ok = py:exec(<<"
import pickle
from sklearn.linear_model import LinearRegression
X = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 3.0]]
y = [1.0 + 2.0 * a + 3.0 * b for a, b in X]
model = LinearRegression().fit(X, y)
">>),
        {ok, none} = py:eval(<<"pickle.dump(model, open(p, 'wb'))">>, #{p => ModelPath}),
        {ok, Pid} = ml_predictor:start_link(ModelPath),
        {ok, P} = ml_predictor:predict(Pid, [1.0, 2.0]),
        true = abs(P - 9.0) < 1.0e-6,
        {ok, Q} = ml_predictor:predict(Pid, [0, 0]),
        true = abs(Q - 1.0) < 1.0e-6,
        unlink(Pid),
        gen_server:stop(Pid)
    end).
