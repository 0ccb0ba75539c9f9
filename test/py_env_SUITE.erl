%% Process-bound envs: every implicit-env snippet of process-bound-envs.md,
%% isolation, cleanup on exit (with __del__), and the actor patterns.
-module(py_env_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, in_process}, {group, isolated_pool}].

groups() ->
    py_test_util:pool_groups(cases(), in_process_only()).

cases() ->
    [spec_process_a_b_isolation, spec_no_conflict_between_spawns, env_in_process_dictionary,
     env_per_context, modules_shared_per_interpreter, spec_py_counter_actor,
     spec_reset_via_supervisor, spec_ml_predictor, del_runs_after_process_exit,
     env_dict_cleared_on_exit, env_survives_caller_death_until_request_done,
     envs_released_when_context_stops,
     main_module_resolves_in_callers_env].

%% These rely on the pool's contexts and a worker context started by the
%% test sharing one interpreter (a module made through one is seen by the
%% other); each isolated context has a Python of its own. py_isolated_SUITE
%% runs ml_predictor on an isolated pool.
in_process_only() ->
    [spec_ml_predictor, envs_released_when_context_stops].

init_per_group(Group, Config) ->
    py_test_util:init_pool_group(Group, Config).

end_per_group(Group, _Config) ->
    py_test_util:end_pool_group(Group).

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

%% "How It Works": process A and B on the same context, as written.
spec_process_a_b_isolation(_Config) ->
    Self = self(),
    A = spawn(fun() ->
        Ctx = py:context(1),
        ok = py:exec(Ctx, <<"state = 'hello'">>),
        {ok, <<"hello">>} = py:eval(Ctx, <<"state">>),
        Self ! {a, done}
    end),
    receive {a, done} -> ok after ?PATIENCE -> ct:fail({a_timeout, A}) end,
    B = spawn(fun() ->
        Ctx = py:context(1),
        %% state is undefined here - different process
        {error, _} = py:eval(Ctx, <<"state">>),
        Self ! {b, py:eval(Ctx, <<"state">>)}
    end),
    receive {b, R} -> {error, {'NameError', _}} = R after ?PATIENCE -> ct:fail({b_timeout, B}) end.

%% "vs. Global Interpreter State": two spawns writing x, no conflict.
spec_no_conflict_between_spawns(_Config) ->
    Ctx = py:context(1),
    Self = self(),
    %% Each process is automatically isolated
    [spawn(fun() ->
               ok = py:exec(Ctx, iolist_to_binary(["x = ", integer_to_list(I)])),
               timer:sleep(50),
               Self ! {I, py:eval(Ctx, <<"x">>)}
           end) || I <- [1, 2]],
    receive {1, R1} -> {ok, 1} = R1 after ?PATIENCE -> ct:fail(timeout) end,
    receive {2, R2} -> {ok, 2} = R2 after ?PATIENCE -> ct:fail(timeout) end.

env_in_process_dictionary(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"a = 1">>),
    #{Ctx := Env} = get(py_local_env),
    true = is_reference(Env) orelse py_isolated_call:is_env(Env),
    %% the same env is reused
    ok = py:exec(Ctx, <<"a += 1">>),
    #{Ctx := Env} = get(py_local_env),
    {ok, 2} = py:eval(Ctx, <<"a">>).

env_per_context(_Config) ->
    case py_context_pool:size() >= 2 of
        true ->
            C1 = py:context(1),
            C2 = py:context(2),
            ok = py:exec(C1, <<"where = 'one'">>),
            ok = py:exec(C2, <<"where = 'two'">>),
            {ok, <<"one">>} = py:eval(C1, <<"where">>),
            {ok, <<"two">>} = py:eval(C2, <<"where">>);
        false ->
            {ok, C} = py_context:start_link(extra, worker),
            ok = py:exec(py:context(1), <<"where = 'one'">>),
            {error, {'NameError', _}} = py:eval(C, <<"where">>),
            py_context:stop(C)
    end.

%% Imported modules are cached per interpreter, not per process.
modules_shared_per_interpreter(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"import json\njson._ep_marker = 'shared'">>),
    Self = self(),
    spawn(fun() -> Self ! {other, py:eval(Ctx, <<"__import__('json')._ep_marker">>)} end),
    receive {other, R} -> {ok, <<"shared">>} = R after ?PATIENCE -> ct:fail(timeout) end,
    ok = py:exec(Ctx, <<"del json._ep_marker">>).

spec_py_counter_actor(_Config) ->
    {ok, Counter} = py_counter:start_link(),
    1 = py_counter:increment(Counter),
    2 = py_counter:increment(Counter),
    1 = py_counter:decrement(Counter),
    1 = py_counter:get(Counter),
    %% A second actor has its own Counter
    {ok, Other} = py_counter:start_link(),
    1 = py_counter:increment(Other),
    1 = py_counter:get(Counter),
    unlink(Counter), unlink(Other),
    exit(Counter, kill), exit(Other, kill).

spec_reset_via_supervisor(_Config) ->
    {ok, Sup} = py_worker_sup:start_link(),
    {ok, <<"fresh">>} = py_worker:get(),
    {ok, none} = py_worker:set(<<"dirty">>),
    {ok, <<"dirty">>} = py_worker:get(),
    {ok, _} = py_worker_sup:reset_worker(Sup),
    {ok, <<"fresh">>} = py_worker:get(),
    unlink(Sup),
    exit(Sup, shutdown).

%% The ML predictor with a pickled model the test writes itself. The model
%% class lives in a module file so pickle can find it again.
spec_ml_predictor(Config) ->
    Dir = ?config(priv_dir, Config),
    ModuleSrc = <<"
class Prediction(list):
    def tolist(self):
        return list(self)

class LinearModel:
    def __init__(self, weights, bias):
        self.weights = weights
        self.bias = bias
    def predict(self, rows):
        return Prediction(sum(w * x for w, x in zip(self.weights, row)) + self.bias for row in rows)
">>,
    ok = file:write_file(filename:join(Dir, "tiny_model.py"), ModuleSrc),
    ModelPath = list_to_binary(filename:join(Dir, "model.pkl")),
    ok = py:exec(<<"import sys, pickle">>),
    {ok, none} = py:eval(<<"sys.path.insert(0, d)">>, #{d => list_to_binary(Dir)}),
    ok = py:exec(<<"import tiny_model">>),
    {ok, none} = py:eval(<<"pickle.dump(tiny_model.LinearModel([2.0, 3.0], 1.0), open(p, 'wb')) or None">>,
                         #{p => ModelPath}),
    {ok, Pid} = ml_predictor:start_link(ModelPath),
    {ok, 9.0} = ml_predictor:predict(Pid, [1.0, 2.0]),
    {ok, 1.0} = ml_predictor:predict(Pid, [0, 0]),
    %% Another predictor process has its own _model
    Self = self(),
    spawn(fun() -> Self ! {probe, py:eval(<<"_model">>)} end),
    receive {probe, R} -> {error, {'NameError', _}} = R end,
    unlink(Pid),
    gen_server:stop(Pid).

%% Design.md fact 13: a function defined in the env holds the env through
%% __globals__, so the env dict must be cleared when the process dies, or
%% __del__ would wait for the cycle collector.
del_runs_after_process_exit(_Config) ->
    ok = py:exec(<<"import sys, types\n"
                   "sys.modules.setdefault('_ep_del_log', types.ModuleType('_ep_del_log')).events = []\n">>),
    Ctx = py:context(),
    Self = self(),
    Pid = spawn(fun() ->
        ok = py:exec(Ctx, <<"
import _ep_del_log
class Tracked:
    def __init__(self, name):
        self.name = name
    def __del__(self):
        _ep_del_log.events.append(self.name)
def helper():
    return obj
obj = Tracked('gone-with-process')
">>),
        Self ! ready,
        receive stop -> ok end
    end),
    receive ready -> ok end,
    {ok, []} = py:eval(Ctx, <<"__import__('_ep_del_log').events">>),
    MRef = monitor(process, Pid),
    Pid ! stop,
    receive {'DOWN', MRef, _, _, _} -> ok end,
    true = py_test_util:wait_until(
             fun() ->
                 {ok, Events} = py:eval(Ctx, <<"__import__('_ep_del_log').events">>),
                 Events =:= [<<"gone-with-process">>]
             end).

env_dict_cleared_on_exit(_Config) ->
    {ok, _} = py:eval(<<"1">>),  % this process's own env exists before counting
    Before = envs_alive(),
    Self = self(),
    Pids = [spawn(fun() -> ok = py:exec(<<"x = 1">>), Self ! {done, self()} end) || _ <- lists:seq(1, 50)],
    [receive {done, P} -> ok end || P <- Pids],
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), envs_alive() =< Before end).

%% A caller killed while its request is queued or running: the request
%% still has its env, finishes, and the env is released afterwards.
env_survives_caller_death_until_request_done(Config) ->
    Ctx = py:context(1),
    {ok, _} = py:eval(Ctx, <<"1">>),  % this process's own env exists before counting
    ok = py:exec(Ctx, <<"import sys, types\n"
                        "sys.modules['_ep_done'] = types.ModuleType('_ep_done')\n"
                        "sys.modules['_ep_done'].value = None">>),
    Before = envs_alive(),
    Gate = py_test_util:gate(Config, Ctx),
    Self = self(),
    %% the request tells us it runs, then waits at the gate
    Pid = spawn(fun() -> py:eval(Ctx, <<"exec(code)">>, #{code => <<"import erlang, test_gate, _ep_done\n"
                                                                      "erlang.send(me, 'running')\n"
                                                                      "test_gate.wait(gate)\n"
                                                                      "x = 1\n"
                                                                      "_ep_done.value = x">>,
                                                        me => Self, gate => Gate}) end),
    receive <<"running">> -> ok after ?PATIENCE -> ct:fail(not_running) end,
    MRef = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', MRef, process, Pid, killed} -> ok end,
    ok = py_test_util:open_gate(Gate),
    %% the request ran to its end in its env (x was set there and read back)
    true = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"__import__('_ep_done').value">>) =:= {ok, 1} end),
    true = py_test_util:wait_until(fun() -> py_test_util:drain_gc(), envs_alive() =< Before end).

%% A context that stops releases the namespaces made on it at once, even
%% though the processes that own them live on.
envs_released_when_context_stops(_Config) ->
    ok = py:exec(<<"import sys, types\n"
                   "sys.modules.setdefault('_ep_stop_log', types.ModuleType('_ep_stop_log')).events = []\n">>),
    {ok, Ctx} = py_context:start_link(env_owner, worker),
    ok = py:exec(Ctx, <<"
import _ep_stop_log
class Tracked:
    def __del__(self):
        _ep_stop_log.events.append('released')
obj = Tracked()
">>),
    ok = py_context:stop(Ctx),
    {ok, [<<"released">>]} = py:eval(<<"__import__('_ep_stop_log').events">>),
    {error, context_not_running} = py:eval(Ctx, <<"obj">>).

main_module_resolves_in_callers_env(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def whoami():\n    return 'mine'\n">>),
    {ok, <<"mine">>} = py:call(Ctx, '__main__', whoami, []),
    {ok, <<"__main__">>} = py:eval(Ctx, <<"__name__">>).

envs_alive() ->
    #{envs_alive := N} = py:info(),
    N.
