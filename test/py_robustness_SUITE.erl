%% Timeouts, killed callers, stopped contexts and churn: nothing crashes,
%% nothing hangs, memory comes back.
-module(py_robustness_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, in_process}, {group, isolated_pool}].

groups() ->
    py_test_util:pool_groups(cases(), in_process_only()).

cases() ->
    [timeout_interrupts_busy_loop, timeout_not_swallowed_by_except_exception,
     timeout_interrupts_sleep_loop, timeout_in_blocking_call, timeout_of_queued_request_never_runs,
     timeout_default_for_contextless_calls_is_finite, late_interrupt_never_hits_next_request,
     caller_killed_mid_call, many_callers_killed_mid_call, stop_context_with_queued_calls,
     stop_context_under_load, stop_after_swallowed_interrupt, stop_idle_context,
     context_process_killed, pool_context_restart_under_callers, envs_of_dead_contexts_dropped,
     env_used_by_another_worker_while_its_context_stops, start_context_errors,
     churn_10000_processes_memory_flat].

in_process_only() ->
    [].

init_per_group(Group, Config) ->
    py_test_util:init_pool_group(Group, Config).

end_per_group(Group, _Config) ->
    py_test_util:end_pool_group(Group).

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

timeout_interrupts_busy_loop(_Config) ->
    Ctx = py:context(1),
    {error, timeout} = py:eval(Ctx, <<"exec('while True: pass')">>, #{}, #{timeout => 100}),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    {error, timeout} = py:exec(Ctx, <<"while True: pass">>, #{timeout => 50}),
    {error, timeout} = py:call(Ctx, builtins, exec, [<<"while True: pass">>, #{}], #{}, #{timeout => 50}),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>).

timeout_not_swallowed_by_except_exception(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"
def stubborn():
    n = 0
    while True:
        try:
            n += 1
        except Exception:
            pass
">>),
    {error, timeout} = py:call(Ctx, '__main__', stubborn, [], #{}, #{timeout => 100}),
    {ok, <<"fine">>} = py:eval(Ctx, <<"'fine'">>),
    %% the exception is visible to Python code as erlang.Interrupted
    ok = py:exec(Ctx, <<"
import erlang
seen = []
def observe():
    try:
        while True:
            pass
    except erlang.Interrupted:
        seen.append('interrupted')
        raise
">>),
    {error, timeout} = py:call(Ctx, '__main__', observe, [], #{}, #{timeout => 100}),
    {ok, [<<"interrupted">>]} = py:eval(Ctx, <<"seen">>).

timeout_interrupts_sleep_loop(_Config) ->
    Ctx = py:context(1),
    T0 = erlang:monotonic_time(millisecond),
    {error, timeout} = py:exec(Ctx, <<"import time\nwhile True: time.sleep(0.01)">>, #{timeout => 100}),
    %% the loop never ends by itself: only the interrupt frees the context
    {ok, 1} = py:eval(Ctx, <<"1">>, #{}, #{timeout => ?PATIENCE}),
    ct:pal("busy context free again after ~b ms", [erlang:monotonic_time(millisecond) - T0]).

%% Code blocked in a C call (here time.sleep) cannot be interrupted until
%% the call returns; the interrupt then fires at once and the context is
%% usable again. The caller got {error, timeout} at its deadline.
timeout_in_blocking_call(_Config) ->
    {ok, Ctx} = py_context:start_link(blocked, worker),
    {error, timeout} = py:exec(Ctx, <<"import time\ntime.sleep(0.5)\nwhile True: pass">>, #{timeout => 100}),
    {ok, 1} = py:eval(Ctx, <<"1">>, #{}, #{timeout => ?PATIENCE}),
    ok = py_context:stop(Ctx).

timeout_of_queued_request_never_runs(Config) ->
    {ok, Ctx} = py_context:start_link(queued, worker),
    ok = py:exec(Ctx, <<"import sys, types\n"
                        "sys.modules['_ep_flag'] = types.ModuleType('_ep_flag')\n"
                        "sys.modules['_ep_flag'].ran = False">>),
    Self = self(),
    Gate = py_test_util:gate(Config, Ctx),
    Busy = spawn(fun() -> Self ! {busy, py:eval(Ctx, <<"__import__('test_gate').wait(g)">>, #{g => Gate})} end),
    %% the busy call runs until the gate opens
    true = py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(Ctx), B end),
    {error, timeout} = py:exec(Ctx, <<"import _ep_flag\n_ep_flag.ran = True">>, #{timeout => 50}),
    ok = py_test_util:open_gate(Gate),
    receive {busy, {ok, none}} -> ok after ?PATIENCE -> ct:fail({busy_caller_stuck, Busy}) end,
    {ok, false} = py:eval(Ctx, <<"__import__('_ep_flag').ran">>),
    ok = py_context:stop(Ctx).

timeout_default_for_contextless_calls_is_finite(_Config) ->
    %% The default is 30 s; an explicit timeout on the context-less form works too.
    {error, timeout} = py:eval(<<"exec('while True: pass')">>, #{}, 100),
    {error, timeout} = py:call(builtins, exec, [<<"while True: pass">>, #{}], #{}, 100),
    {ok, 1} = py:eval(<<"1">>).

%% Cancel races with completion: an interrupt raised for a request that
%% just finished must never surface in the next one.
late_interrupt_never_hits_next_request(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def spin(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n">>),
    Results = [begin
                   _ = py:call(Ctx, '__main__', spin, [rand:uniform(20000)], #{}, #{timeout => rand:uniform(3) - 1}),
                   py:call(Ctx, '__main__', spin, [10], #{}, #{timeout => ?PATIENCE})
               end || _ <- lists:seq(1, 400)],
    [{ok, 45}] = lists:usort(Results).

caller_killed_mid_call(_Config) ->
    Ctx = py:context(1),
    Pid = spawn(fun() -> py:exec(Ctx, <<"import time\ntime.sleep(0.2)">>) end),
    timer:sleep(50),
    exit(Pid, kill),  % while queued, running, or not yet sent: all fine
    {ok, 7} = py:eval(Ctx, <<"3 + 4">>, #{}, #{timeout => ?PATIENCE}).

many_callers_killed_mid_call(_Config) ->
    Ctx = py:context(1),
    Pids = [spawn(fun() -> py:exec(Ctx, <<"import time\ntime.sleep(0.002)">>) end) || _ <- lists:seq(1, 300)],
    timer:sleep(20),
    [exit(P, kill) || P <- Pids],
    {ok, <<"ok">>} = py:eval(Ctx, <<"'ok'">>, #{}, #{timeout => ?PATIENCE}),
    {ok, 1} = py:eval(Ctx, <<"1">>).

stop_context_with_queued_calls(_Config) ->
    {ok, Ctx} = py_context:start_link(doomed, worker),
    unlink(Ctx),
    Self = self(),
    %% runs until the stop interrupts it
    Running = spawn(fun() -> Self ! {running, py:exec(Ctx, <<"import time\nwhile True: time.sleep(0.01)">>)} end),
    true = py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(Ctx), B end),
    Queued = [spawn(fun() -> Self ! {queued, py:eval(Ctx, <<"1">>)} end) || _ <- lists:seq(1, 50)],
    true = py_test_util:wait_until(fun() -> queue_length(Ctx) =:= 50 end),
    ok = py_context:stop(Ctx),
    receive {running, R} -> {error, context_stopped} = R after ?PATIENCE -> ct:fail({running_stuck, Running}) end,
    Answers = [receive {queued, Q} -> Q after ?PATIENCE -> ct:fail(queued_stuck) end || _ <- Queued],
    [{error, context_stopped}] = lists:usort(Answers),
    {error, context_not_running} = py:eval(Ctx, <<"1">>),
    {context_not_running, Ctx} = catch_error(fun() -> py_context:get_nif_ref(Ctx) end).

%% 50 processes hammer a context while it is stopped: each loop ends with
%% a clean error, none hangs, the VM is fine.
stop_context_under_load(_Config) ->
    {ok, Ctx} = py_context:start_link(loaded, worker),
    unlink(Ctx),
    Self = self(),
    Loop = fun Loop(N) ->
                   case py:call(Ctx, math, sqrt, [N]) of
                       {ok, _} -> Loop(N + 1);
                       {error, Reason} -> Self ! {ended, self(), N, Reason}
                   end
           end,
    Pids = [spawn(fun() -> Loop(1) end) || _ <- lists:seq(1, 50)],
    timer:sleep(200),
    ok = py_context:stop(Ctx),
    Ends = [receive {ended, P, N, R} -> {N, R} after ?PATIENCE -> ct:fail({caller_stuck, P}) end || P <- Pids],
    Reasons = lists:usort([R || {_, R} <- Ends]),
    ct:pal("calls served before stop: ~b; final errors: ~p", [lists:sum([N - 1 || {N, _} <- Ends]), Reasons]),
    [] = Reasons -- [context_stopped, context_not_running].

%% Code that swallows the timeout's interrupt once still stops when its
%% context is stopped: the stop raises again.
stop_after_swallowed_interrupt(_Config) ->
    {ok, Ctx} = py_context:start_link(swallower, worker),
    unlink(Ctx),
    ok = py:exec(Ctx, <<"
import erlang
def swallow_once():
    try:
        while True:
            pass
    except erlang.Interrupted:
        pass
    while True:
        pass
">>),
    {error, timeout} = py:call(Ctx, '__main__', swallow_once, [], #{}, #{timeout => 100}),
    Ref = py_context:get_nif_ref(Ctx),
    Tag = make_ref(),
    ok = py_nif:context_stop(Ref, Tag),
    receive {Tag, stopped} -> ok after ?PATIENCE -> ct:fail(stop_not_delivered) end,
    exit(Ctx, kill).

%% Callers arriving while a pool context restarts get a result or a clean
%% error, never an exception.
pool_context_restart_under_callers(_Config) ->
    Victim = py:context(1),
    Self = self(),
    exit(Victim, kill),
    Pids = [spawn(fun() -> Self ! {result, self(), catch py:eval(<<"1 + 1">>)} end) || _ <- lists:seq(1, 200)],
    Results = [receive {result, P, R} -> R after ?PATIENCE -> ct:fail(stuck) end || P <- Pids],
    [] = [R || R <- Results, R =/= {ok, 2}, R =/= {error, context_not_running}, R =/= {error, context_stopped}],
    true = py_test_util:wait_until(fun() -> is_pid(catch py:context(1)) andalso py:context(1) =/= Victim end).

envs_of_dead_contexts_dropped(_Config) ->
    {ok, Ctx} = py_context:start_link(short_lived, worker),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    #{Ctx := _} = get(py_local_env),
    ok = py_context:stop(Ctx),
    %% the next new env of this process prunes the dead context's
    {ok, Other} = py_context:start_link(other, worker),
    {ok, 1} = py:eval(Other, <<"1">>),
    false = maps:is_key(Ctx, get(py_local_env)),
    ok = py_context:stop(Other).

%% A worker env may be used through another worker context; its own context
%% stopping meanwhile empties it, and the running call keeps a live dict.
env_used_by_another_worker_while_its_context_stops(Config) ->
    {ok, C1} = py_context:start_link(env_home, worker),
    {ok, C2} = py_context:start_link(env_guest, worker),
    {ok, Env} = py_context:create_local_env(C1),
    Ref2 = py_context:get_nif_ref(C2),
    Gate = py_test_util:gate(Config, C2),
    Self = self(),
    spawn(fun() ->
              Self ! {guest, py_nif:context_eval(Ref2, <<"__import__('test_gate').wait(g) or x">>,
                                                 #{x => 7, g => Gate}, Env)}
          end),
    %% C1 stops while the guest's call runs in its env
    true = py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(C2), B end),
    ok = py_context:stop(C1),
    ok = py_test_util:open_gate(Gate),
    receive
        {guest, R} ->
            %% the namespace was emptied under it: a clean error or the value
            true = R =:= {ok, 7} orelse element(1, element(2, R)) =:= 'NameError'
    after ?PATIENCE -> ct:fail(guest_stuck)
    end,
    {ok, 3} = py_nif:context_eval(Ref2, <<"1 + 2">>, #{}, Env),
    ok = py_context:stop(C2).

stop_idle_context(_Config) ->
    {ok, Ctx} = py_context:start_link(idle, worker),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    ok = py_context:stop(Ctx),
    {error, context_not_running} = py:eval(Ctx, <<"1">>).

context_process_killed(_Config) ->
    {ok, Ctx} = py_context:start_link(killed, worker),
    unlink(Ctx),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    Before = contexts_alive(),
    MRef = monitor(process, Ctx),
    exit(Ctx, kill),
    receive {'DOWN', MRef, process, Ctx, killed} -> ok end,
    %% The native side learns of the death through its own monitor, a moment
    %% later; from then on calls fail cleanly.
    true = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"1">>) =:= {error, context_not_running} end),
    %% the native thread lets go once the owner is gone
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), contexts_alive() < Before end).

start_context_errors(_Config) ->
    {error, {badarg, {mode, bogus}}} = py_context:start_link(x, bogus),
    {error, {badarg, options}} = py_context:start_link(x, worker, not_a_map),
    {error, {badarg, options}} = py_context:start_link(x, worker, #{max_batch => 0}),
    {error, {badarg, options}} = py_context:start_link(x, worker, #{spin_us => 1 bsl 40}),
    %% a mode this Python lacks is refused with the reason (see module-matrix.md)
    {ok, #{owngil_supported := OwnGil, subinterp_supported := Sub}} = py_nif:runtime_info(),
    [begin
         {error, {Reason, Why}} = py_context:start_link(x, Mode),
         true = is_list(Why) andalso Why =/= []
     end || {Mode, Reason, false} <- [{owngil, owngil_unsupported, OwnGil},
                                      {subinterp, subinterp_unsupported, Sub}]],
    %% the caller survives a failed start, and nothing is left in its mailbox
    %% (a failed start acknowledges last: whatever else it sent is here already)
    true = is_process_alive(self()),
    {messages, []} = process_info(self(), messages),
    %% stopping a context that is gone is fine
    {ok, Ctx} = py_context:start_link(x, worker),
    ok = py_context:stop(Ctx),
    ok = py_context:stop(Ctx).

%% 10,000 processes each make an env, use it and die: envs, Python objects
%% and RSS come back to where they were.
churn_10000_processes_memory_flat(_Config) ->
    Ctx = py:context(1),
    Churn = fun(N) -> py_test_util:churn(Ctx, N) end,
    {ok, _} = py:eval(<<"1">>),  % this process's own env exists before counting
    Envs0 = envs_alive(),
    Churn(2000),  % warm up allocators and caches
    py_test_util:settle(Envs0),
    {Objs0, Rss0} = {py_test_util:python_objects(), py_test_util:rss_kb()},
    Churn(10000),
    py_test_util:settle(Envs0),
    {Envs1, Objs1, Rss1} = {envs_alive(), py_test_util:python_objects(), py_test_util:rss_kb()},
    ct:pal("10,000 processes: envs ~b -> ~b, Python objects ~b -> ~b, RSS ~b -> ~b KiB",
           [Envs0, Envs1, Objs0, Objs1, Rss0, Rss1]),
    ?assert(Objs1 - Objs0 < 200),
    ?assert(py_test_util:rss_growth_ok(Rss1 - Rss0, 20 * 1024)).

envs_alive() ->
    #{envs_alive := N} = py:info(),
    N.

queue_length(Ctx) ->
    {ok, #{queue_length := Q}} = py_context:info(Ctx),
    Q.

contexts_alive() ->
    #{contexts_alive := N} = py:info(),
    N.

catch_error(Fun) ->
    try Fun() catch error:Reason -> Reason end.
