%% subinterp and owngil contexts: every case runs in each mode this Python
%% offers; a mode it lacks is skipped with the product's own reason.
-module(py_subinterp_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, subinterp}, {group, owngil}, {group, owngil_only}].

groups() ->
    [{subinterp, [], cases()},
     {owngil, [], cases()},
     {owngil_only, [], [spec_myservice_explicit_env, spec_sharing_context_isolating_state,
                        parallel_decimal_datetime_stress, churn_10000_processes_memory_flat,
                        many_subinterpreters_import_extensions, busy_subinterpreter_does_not_stall_workers,
                        non_stdlib_extension_refused_on_312]}].

cases() ->
    [implicit_envs_isolated, stdlib_imports, explicit_env_in_this_mode, env_sent_to_another_process,
     two_envs_one_process, env_wrong_interpreter, env_outlives_context, callers_killed_mid_call,
     del_after_process_exit, timeout_interrupts, handles_stay_in_their_interpreter,
     stop_with_queued_calls, shared_namespace_without_env, stop_with_python_threads_running].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_group(Group, Config) ->
    Mode = case Group of owngil_only -> owngil; _ -> Group end,
    py_test_util:start_group_context(Group, Mode, Config).

end_per_group(_Group, Config) ->
    py_test_util:stop_group_context(Config).

implicit_envs_isolated(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    spawn(fun() ->
        ok = py:exec(Ctx, <<"state = 'hello'">>),
        Self ! {a, py:eval(Ctx, <<"state">>)}
    end),
    receive {a, A} -> {ok, <<"hello">>} = A end,
    spawn(fun() -> Self ! {b, py:eval(Ctx, <<"state">>)} end),
    receive {b, B} -> {error, {'NameError', _}} = B end,
    #{Ctx := _} = begin ok = py:exec(Ctx, <<"mine = 1">>), get(py_local_env) end,
    {ok, 1} = py:eval(Ctx, <<"mine">>),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]).

stdlib_imports(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import math, json, asyncio, decimal, sqlite3">>),
    {ok, <<"0.3">>} = py:eval(Ctx, <<"str(decimal.Decimal('0.1') + decimal.Decimal('0.2'))">>),
    {ok, [{2}]} = py:eval(Ctx, <<"sqlite3.connect(':memory:').execute('select 1 + 1').fetchall()">>),
    {ok, 5} = py:eval(Ctx, <<"asyncio.run(asyncio.sleep(0, result=5))">>),
    {ok, <<"[1]">>} = py:eval(Ctx, <<"json.dumps([1])">>).

explicit_env_in_this_mode(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Env} = py_context:create_local_env(Ctx),
    CtxRef = py_context:get_nif_ref(Ctx),
    ok = py_nif:context_exec(CtxRef, <<"import itertools\ntickets = itertools.count(1)">>, Env),
    {ok, 1} = py_nif:context_eval(CtxRef, <<"next(tickets)">>, #{}, Env),
    {ok, 2} = py_nif:context_eval(CtxRef, <<"next(tickets)">>, #{}, Env),
    {ok, 13} = py_nif:context_eval(CtxRef, <<"next(tickets) + n">>, #{n => 10}, Env),
    {error, {'NameError', _}} = py_nif:context_eval(CtxRef, <<"undefined_name">>, #{}, Env),
    {error, {badarg, code}} = py_nif:context_exec(CtxRef, not_code, Env),
    {error, {badarg, env}} = py_nif:context_exec(CtxRef, <<"1">>, make_ref()),
    {error, {badarg, context}} = py_nif:context_exec(make_ref(), <<"1">>, Env),
    {error, timeout} = py_nif:context_exec(CtxRef, <<"while True: pass">>, Env, #{timeout => 100}),
    {ok, 4} = py_nif:context_eval(CtxRef, <<"next(tickets)">>, #{}, Env).

env_sent_to_another_process(Config) ->
    Ctx = ?config(ctx, Config),
    CtxRef = py_context:get_nif_ref(Ctx),
    {ok, Env} = py_context:create_local_env(Ctx),
    ok = py_nif:context_exec(CtxRef, <<"shared = ['made by the creator']">>, Env),
    Self = self(),
    spawn(fun() ->
        ok = py_nif:context_exec(CtxRef, <<"shared.append('added elsewhere')">>, Env),
        Self ! done
    end),
    receive done -> ok end,
    {ok, [<<"made by the creator">>, <<"added elsewhere">>]} = py_nif:context_eval(CtxRef, <<"shared">>, #{}, Env).

two_envs_one_process(Config) ->
    Ctx = ?config(ctx, Config),
    CtxRef = py_context:get_nif_ref(Ctx),
    {ok, E1} = py_context:create_local_env(Ctx),
    {ok, E2} = py_context:create_local_env(Ctx),
    ok = py_nif:context_exec(CtxRef, <<"x = 1">>, E1),
    ok = py_nif:context_exec(CtxRef, <<"x = 2">>, E2),
    {ok, 1} = py_nif:context_eval(CtxRef, <<"x">>, #{}, E1),
    {ok, 2} = py_nif:context_eval(CtxRef, <<"x">>, #{}, E2).

env_wrong_interpreter(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Mine} = py_context:create_local_env(Ctx),
    WorkerRef = py_context:get_nif_ref(py:context(1)),
    {error, env_wrong_interpreter} = py_nif:context_exec(WorkerRef, <<"x = 1">>, Mine),
    {ok, WorkerEnv} = py_context:create_local_env(py:context(1)),
    {error, env_wrong_interpreter} = py_nif:context_eval(py_context:get_nif_ref(Ctx), <<"1">>, #{}, WorkerEnv),
    %% and between two subinterpreters
    {ok, Other} = py_context:start_link(other, ?config(mode, Config)),
    {error, env_wrong_interpreter} = py_nif:context_exec(py_context:get_nif_ref(Other), <<"x = 1">>, Mine),
    ok = py_context:stop(Other).

%% An env that outlives its context (and its interpreter) is never touched
%% again: calls fail cleanly, and dropping it later is harmless.
env_outlives_context(Config) ->
    {ok, Ctx} = py_context:start_link(short, ?config(mode, Config)),
    CtxRef = py_context:get_nif_ref(Ctx),
    {ok, Env} = py_context:create_local_env(Ctx),
    ok = py_nif:context_exec(CtxRef, <<"data = list(range(1000))">>, Env),
    ok = py:exec(Ctx, <<"implicit = 1">>),
    ok = py_context:stop(Ctx),
    {error, context_not_running} = py_nif:context_eval(CtxRef, <<"data">>, #{}, Env),
    {error, context_not_running} = py:eval(Ctx, <<"implicit">>),
    Self = self(),
    spawn(fun() -> Self ! {other, py_nif:context_eval(CtxRef, <<"1">>, #{}, Env)} end),
    receive {other, R} -> {error, context_not_running} = R end,
    %% drop every reference and collect
    erase(py_local_env),
    py_test_util:drain_gc(),
    {ok, #{gil_violations := 0}} = py_nif:runtime_info().

callers_killed_mid_call(Config) ->
    Ctx = ?config(ctx, Config),
    Pids = [spawn(fun() -> py:exec(Ctx, <<"import time\ntime.sleep(0.002)\nx = 1">>) end) || _ <- lists:seq(1, 100)],
    timer:sleep(30),  % some queued, some running, some not yet sent: all fine
    [exit(P, kill) || P <- Pids],
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>).

del_after_process_exit(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import sys, types\n"
                        "sys.modules.setdefault('_ep_del', types.ModuleType('_ep_del')).events = []">>),
    Self = self(),
    Pid = spawn(fun() ->
        ok = py:exec(Ctx, <<"
import _ep_del
class Tracked:
    def __del__(self):
        _ep_del.events.append('gone')
obj = Tracked()
">>),
        Self ! ready,
        receive stop -> ok end
    end),
    receive ready -> ok end,
    {ok, []} = py:eval(Ctx, <<"__import__('_ep_del').events">>),
    Pid ! stop,
    true = py_test_util:wait_until(
             fun() -> py:eval(Ctx, <<"__import__('_ep_del').events">>) =:= {ok, [<<"gone">>]} end).

timeout_interrupts(Config) ->
    Ctx = ?config(ctx, Config),
    {error, timeout} = py:eval(Ctx, <<"exec('while True: pass')">>, #{}, #{timeout => 100}),
    {error, timeout} = py:exec(Ctx, <<"import time\nwhile True: time.sleep(0.01)">>, #{timeout => 100}),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>).

handles_stay_in_their_interpreter(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, H} = py:eval(Ctx, <<"__import__('fractions').Fraction(1, 3)">>),
    {ok, 3} = py:getattr(H, denominator),
    {ok, 2} = py:eval(Ctx, <<"(f * 6).numerator">>, #{f => H}),
    %% a handle is an object of its own interpreter: no other may use it
    {error, env_wrong_interpreter} = py:eval(py:context(1), <<"f">>, #{f => H}),
    {ok, WorkerHandle} = py:eval(py:context(1), <<"object()">>),
    {error, env_wrong_interpreter} = py:eval(Ctx, <<"o">>, #{o => WorkerHandle}).

stop_with_queued_calls(Config) ->
    {ok, Ctx} = py_context:start_link(doomed, ?config(mode, Config)),
    Self = self(),
    spawn(fun() -> Self ! {running, py:exec(Ctx, <<"while True: pass">>)} end),
    true = py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(Ctx), B end),
    Queued = [spawn(fun() -> Self ! {queued, py:eval(Ctx, <<"1">>)} end) || _ <- lists:seq(1, 20)],
    true = py_test_util:wait_until(fun() -> {ok, #{queue_length := Q}} = py_context:info(Ctx), Q =:= 20 end),
    ok = py_context:stop(Ctx),
    receive {running, R} -> {error, context_stopped} = R after ?PATIENCE -> ct:fail(running_stuck) end,
    [{error, context_stopped}] =
        lists:usort([receive {queued, Q} -> Q after ?PATIENCE -> ct:fail(stuck) end || _ <- Queued]).

shared_namespace_without_env(Config) ->
    CtxRef = py_context:get_nif_ref(?config(ctx, Config)),
    ok = py_nif:context_exec(CtxRef, <<"counter = 41">>),
    Self = self(),
    spawn(fun() -> Self ! {seen, py_nif:context_eval(CtxRef, <<"counter + 1">>, #{})} end),
    receive {seen, R} -> {ok, 42} = R end.

%% Python threads still running when the context stops: a _thread thread
%% (Py_EndInterpreter would abort the process on it), a threading thread
%% that finishes when interrupted, one blocked for good (the interpreter is
%% then left alive rather than joined forever). The VM lives on, and new
%% subinterpreters can still be made.
stop_with_python_threads_running(Config) ->
    Mode = ?config(mode, Config),
    Start = fun(Code) ->
                {ok, C} = py_context:start_link(threaded, Mode),
                unlink(C),
                ok = py:exec(C, Code),
                C
            end,
    C1 = Start(<<"import _thread, time
_thread.start_new_thread(time.sleep, (0.3,))">>),
    ok = py_context:stop(C1),
    C2 = Start(<<"import threading
"
                 "def loop():
"
                 "    while True:
"
                 "        pass
"
                 "threading.Thread(target=loop).start()">>),
    ok = py_context:stop(C2),
    C3 = Start(<<"import threading
threading.Thread(target=threading.Event().wait).start()">>),
    ok = py_context:stop(C3),
    {ok, C4} = py_context:start_link(after_threads, Mode),
    {ok, 2} = py:eval(C4, <<"1 + 1">>),
    ok = py_context:stop(C4),
    {ok, 1} = py:eval(<<"1">>).

%% --- owngil only -----------------------------------------------------------

%% An owngil context busy in C code (holding its GIL all along) must not
%% delay timeouts and interrupts of other contexts. The checks only mean
%% something while the busy call still runs: should it end first (a fast
%% machine), they are made again with ten times the work.
busy_subinterpreter_does_not_stall_workers(_Config) ->
    {ok, Busy} = py_context:start_link(busy, owngil),
    busy_check(Busy, 8),
    ok = py_context:stop(Busy).

busy_check(_Busy, Exp) when Exp > 11 ->
    ct:fail(busy_call_always_ended_first);
busy_check(Busy, Exp) ->
    Self = self(),
    Tag = make_ref(),
    spawn(fun() -> Self ! {Tag, py:eval(Busy, <<"sum(range(10 ** e))">>, #{e => Exp})} end),
    true = py_test_util:wait_until(fun() -> {ok, #{busy := B}} = py_context:info(Busy), B end),
    Queued = py:eval(Busy, <<"1">>, #{}, #{timeout => 50}),
    Worker = py:context(1),
    Interrupted = py:exec(Worker, <<"while True: pass">>, #{timeout => 100}),
    After = py:eval(Worker, <<"1 + 1">>),
    receive
        {Tag, _} ->
            busy_check(Busy, Exp + 1)
    after 0 ->
        {{error, timeout}, {error, timeout}, {ok, 2}} = {Queued, Interrupted, After},
        N = round(math:pow(10, Exp)),
        Sum = N * (N - 1) div 2,
        receive {Tag, R} -> {ok, Sum} = R after ?PATIENCE -> ct:fail(busy_stuck) end
    end.

%% process-bound-envs.md, "Explicit Environment Creation", as written.
spec_myservice_explicit_env(_Config) ->
%% Create an OWN_GIL context
{ok, Ctx} = py_context:start_link(1, owngil),
%% Create a process-local environment
{ok, Env} = py_context:create_local_env(Ctx),
%% Get the NIF reference for low-level operations
CtxRef = py_context:get_nif_ref(Ctx),
%% Execute code in the isolated environment
ok = py_nif:context_exec(CtxRef, <<"
class MyService:
    def __init__(self):
        self.counter = 0
    def increment(self):
        self.counter += 1
        return self.counter
service = MyService()
">>, Env),
%% Call functions in the environment
{ok, 1} = py_nif:context_eval(CtxRef, <<"service.increment()">>, #{}, Env),
{ok, 2} = py_nif:context_eval(CtxRef, <<"service.increment()">>, #{}, Env),
    unlink(Ctx),
    py_context:stop(Ctx).

%% process-bound-envs.md, "Sharing Context, Isolating State", as written;
%% each spawned body also reports that it got to its end.
spec_sharing_context_isolating_state(_Config) ->
    Self = self(),
%% Shared OWN_GIL context
{ok, Ctx} = py_context:start_link(1, owngil),
CtxRef = py_context:get_nif_ref(Ctx),
%% Process A - its own namespace
spawn(fun() ->
{ok, EnvA} = py_context:create_local_env(Ctx),
ok = py_nif:context_exec(CtxRef, <<"x = 'from A'">>, EnvA),
{ok, <<"from A">>} = py_nif:context_eval(CtxRef, <<"x">>, #{}, EnvA),
    Self ! {done, a}
end),
%% Process B - separate namespace, same context
spawn(fun() ->
{ok, EnvB} = py_context:create_local_env(Ctx),
ok = py_nif:context_exec(CtxRef, <<"x = 'from B'">>, EnvB),
{ok, <<"from B">>} = py_nif:context_eval(CtxRef, <<"x">>, #{}, EnvB),
    Self ! {done, b}
end),
    [receive {done, P} -> ok after ?PATIENCE -> ct:fail({not_done, P}) end || P <- [a, b]],
    unlink(Ctx),
    py_context:stop(Ctx).

%% Two owngil contexts doing decimal and datetime arithmetic at the same time
%% (3.12's single-phase _decimal/_datetime corrupted memory in
%% subinterpreters; design.md fact 10). The work is a fixed count, checked
%% exactly; the two run in lockstep over a pair of pipes (each round ends by
%% writing a byte to the other and reading one from it), so neither gets
%% more than a round ahead of the other, however fast or loaded the machine.
parallel_decimal_datetime_stress(_Config) ->
    {ok, C1} = py_context:start_link(stress1, owngil),
    {ok, C2} = py_context:start_link(stress2, owngil),
    Work = <<"
import decimal, datetime, os
def work(rounds, per_round, read_fd, write_fd):
    try:
        total = decimal.Decimal(0)
        start = datetime.date(2000, 1, 1)
        day = start
        n = 0
        for _ in range(rounds):
            for _ in range(per_round):
                total += decimal.Decimal('0.1') * 3
                day += datetime.timedelta(days=1)
                n += 1
            os.write(write_fd, b'.')
            if os.read(read_fd, 1) != b'.':
                raise RuntimeError('the other context stopped')
        return n, str(total), str(total / n), (day - start).days
    finally:
        # the other side's read then ends, whatever happened here
        os.close(write_fd)
        os.close(read_fd)
">>,
    [ok = py_nif:context_exec(py_context:get_nif_ref(C), Work) || C <- [C1, C2]],
    %% pipe A carries C1's rounds to C2, pipe B C2's to C1
    {ok, {{ReadA, WriteA}, {ReadB, WriteB}}} = py:eval(<<"(__import__('os').pipe(), __import__('os').pipe())">>),
    Rounds = 200,
    PerRound = 250,
    Self = self(),
    [spawn(fun() ->
               Self ! {C, py_nif:context_eval(py_context:get_nif_ref(C), <<"work(r, p, rfd, wfd)">>,
                                              #{r => Rounds, p => PerRound, rfd => R, wfd => W})}
           end) || {C, R, W} <- [{C1, ReadB, WriteA}, {C2, ReadA, WriteB}]],
    Results = [receive {C, R} -> R after ?PATIENCE -> ct:fail(stuck) end || C <- [C1, C2]],
    N = Rounds * PerRound,
    Total = iolist_to_binary(io_lib:format("~b.~b", [3 * N div 10, 3 * N rem 10])),
    [{ok, {N, Total, <<"0.3">>, N}}, {ok, {N, Total, <<"0.3">>, N}}] = Results,
    ok = py_context:stop(C1),
    ok = py_context:stop(C2).

%% design.md fact 10: on 3.12, importing sqlite3 (hence _datetime) in a
%% second subinterpreter corrupted memory. Three rounds of four owngil
%% contexts, made at once, each importing and using the usual suspects,
%% then stopped.
many_subinterpreters_import_extensions(_Config) ->
    Self = self(),
    [begin
         Pids = [spawn(fun() ->
                           {ok, Ctx} = py_context:start_link({round, Round, I}, owngil),
                           R = py:eval(Ctx, <<"(__import__('sqlite3').connect(':memory:').execute('select 2').fetchone(),"
                                              " str(__import__('decimal').Decimal('1.10') * 2),"
                                              " __import__('datetime').date(2024, 1, 31).isoformat(),"
                                              " __import__('json').dumps([1]))">>),
                           ok = py_context:stop(Ctx),
                           Self ! {imported, self(), R}
                       end) || I <- lists:seq(1, 4)],
         [receive {imported, P, R} -> {ok, {{2}, <<"2.20">>, <<"2024-01-31">>, <<"[1]">>}} = R
          after ?PATIENCE -> ct:fail({stuck, P}) end || P <- Pids]
     end || Round <- lists:seq(1, 3)],
    {ok, 1} = py:eval(<<"1">>).

%% 10,000 processes each make an env in one owngil context, use it, die.
churn_10000_processes_memory_flat(_Config) ->
    {ok, Ctx} = py_context:start_link(churn, owngil),
    Churn = fun(N) -> py_test_util:churn(Ctx, N) end,
    Objects = fun() -> {ok, N} = py:eval(Ctx, <<"(__import__('gc').collect(), len(__import__('gc').get_objects()))[1]">>), N end,
    {ok, _} = py:eval(Ctx, <<"1">>),  % this process's own env exists before counting
    #{envs_alive := Envs} = py:info(),
    Churn(2000),
    py_test_util:settle(Envs),
    {Objs0, Rss0} = {Objects(), py_test_util:rss_kb()},
    Churn(10000),
    py_test_util:settle(Envs),
    {Objs1, Rss1} = {Objects(), py_test_util:rss_kb()},
    ct:pal("10,000 processes on one owngil context: Python objects ~b -> ~b, RSS ~b -> ~b KiB",
           [Objs0, Objs1, Rss0, Rss1]),
    ?assert(Objs1 - Objs0 < 200),
    ?assert(py_test_util:rss_growth_ok(Rss1 - Rss0, 20 * 1024)),
    ok = py_context:stop(Ctx).

%% 3.12 only: a C extension outside the standard library is refused in a
%% subinterpreter with a clean ImportError (its PyInit could corrupt memory).
non_stdlib_extension_refused_on_312(Config) ->
    case py_nif:runtime_info() of
        {ok, #{version_info := {3, 12, _}}} ->
            Dir = ?config(priv_dir, Config),
            {ok, Src} = py:eval(<<"__import__('_json').__file__">>),
            {ok, _} = file:copy(Src, filename:join(Dir, filename:basename(Src))),
            {ok, Ctx} = py_context:start_link(guard, owngil),
            ok = py:exec(Ctx, iolist_to_binary(["import sys, importlib.util\nsys.path.insert(0, '", Dir, "')"])),
            %% probing still answers; loading is refused
            {ok, true} = py:eval(Ctx, <<"importlib.util.find_spec('_json') is not None">>),
            {error, {'ImportError', Msg}} = py:exec(Ctx, <<"import _json">>),
            {match, _} = re:run(Msg, "outside the standard library"),
            {ok, 1} = py:eval(Ctx, <<"1">>),
            ok = py_context:stop(Ctx);
        _ ->
            {skip, "only Python 3.12 needs the guard"}
    end.
