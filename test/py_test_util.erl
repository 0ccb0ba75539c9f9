%% Helpers shared by the Common Test suites.
-module(py_test_util).
-include("py_test.hrl").

-export([start/0, stop/0, restart_application/0, with_group_leader/1, collecting_leader/0, collected/1, collecting_leader_loop/1, churn/2, rss_kb/0, rss_kb/1, os_process_alive/1, rss_growth_ok/2, wait_until/1, wait_until/2, drain_gc/0,
         python_objects/0, settle/1, gate/2, open_gate/1, capture_logs/2, log/2, flush/0, log_text/1, start_group_context/3, stop_group_context/1,
         start_isolated_pool/0, stop_isolated_pool/0,
         pool_groups/2, init_pool_group/2, end_pool_group/1]).

start() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

%% Every suite ends here: no Python reference may have been dropped by a
%% thread without the GIL (the NIF counts those instead of crashing).
stop() ->
    {ok, #{gil_violations := 0}} = py_nif:runtime_info(),
    ok.

%% Restarts the application: what py:add_path/import/preload/activate_venv
%% added is forgotten, and the interpreters that outlive it (the main one)
%% drop the preload and venv on the new start. For suites that add them.
restart_application() ->
    ok = application:stop(erlang_python),
    ok = start(),
    {ok, false} = py:eval(<<"'_base_globals' in __import__('erlang').__dict__">>),
    ok.

%% Runs Fun in a process whose group leader collects what it is sent;
%% returns {Fun's result, the text collected, in order}.
with_group_leader(Fun) ->
    Leader = spawn_link(fun() -> gl_leader([]) end),
    Self = self(),
    Caller = spawn_link(fun() ->
                                group_leader(Leader, self()),
                                Self ! {self(), Fun()}
                        end),
    Result = receive {Caller, R} -> R end,
    Leader ! {text, self()},
    Text = receive {Leader, T} -> T end,
    {Result, Text}.

%% A group leader that collects what it is sent, for as long as its
%% creator lives; collected/1 gives the text so far.
collecting_leader() ->
    spawn_link(fun() -> gl_leader([]) end).

collected(Leader) ->
    Leader ! {text, self()},
    receive {Leader, T} -> T end.

%% A group leader's loop that has collected Text already, for leaders of
%% a suite's own that become collecting ones.
collecting_leader_loop(Text) ->
    gl_leader([Text]).

%% Enough of the I/O protocol for io:put_chars and io:format.
gl_leader(Acc) ->
    receive
        {io_request, From, ReplyAs, {put_chars, _Encoding, Chars}} ->
            From ! {io_reply, ReplyAs, ok},
            gl_leader([Chars | Acc]);
        {io_request, From, ReplyAs, {put_chars, _Encoding, M, F, A}} ->
            From ! {io_reply, ReplyAs, ok},
            gl_leader([apply(M, F, A) | Acc]);
        {io_request, From, ReplyAs, _} ->
            From ! {io_reply, ReplyAs, {error, enotsup}},
            gl_leader(Acc);
        {text, Pid} ->
            Pid ! {self(), unicode:characters_to_binary(lists:reverse(Acc))},
            gl_leader(Acc)
    end.

%% Resident set size of this OS process, in KiB.
rss_kb() ->
    rss_kb("self").

%% The resident size of OS process OsPid (an integer, or "self"), in KB.
rss_kb(OsPid) ->
    {ok, Status} = file:read_file("/proc/" ++ pid_text(OsPid) ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =:= {0, 6}],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).

pid_text(OsPid) when is_integer(OsPid) -> integer_to_list(OsPid);
pid_text(Text) -> Text.

%% Whether OS process OsPid runs (a zombie no longer counts: it runs nothing).
os_process_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, AfterName] = binary:split(Stat, <<") ">>),
            binary:first(AfterName) =/= $Z;
        {error, _} ->
            false
    end.

%% Groups in_process (Cases) and isolated_pool: the same cases, but for
%% InProcessOnly, on an application whose pool is isolated.
pool_groups(Cases, InProcessOnly) ->
    [{in_process, [], Cases}, {isolated_pool, [], Cases -- InProcessOnly}].

%% Restarts the application with a pool of 2 isolated contexts for group
%% isolated_pool (spec §11), so a suite's cases run unchanged against
%% Python in OS processes; other groups run as they are.
init_pool_group(isolated_pool, Config) ->
    ok = start_isolated_pool(),
    Config;
init_pool_group(_, Config) ->
    Config.

end_pool_group(isolated_pool) ->
    stop_isolated_pool();
end_pool_group(_) ->
    ok.

%% RSS grew by less than LimitKb. Not measurable in a sanitizer build (ASan
%% holds freed memory in quarantine): there only the object counts speak.
rss_growth_ok(GrowthKb, LimitKb) ->
    case os:getenv("ERLANG_PYTHON_SANITIZE") of
        V when V =:= false; V =:= "" -> GrowthKb < LimitKb;
        _ -> true
    end.

%% Polls Fun until it returns true; false if it has not within ?PATIENCE
%% (a hang: the condition must come true however slow the machine).
wait_until(Fun) ->
    wait_until(Fun, ?PATIENCE).

%% As wait_until/1, giving up after Ms milliseconds.
wait_until(Fun, Ms) ->
    poll(Fun, erlang:monotonic_time(millisecond) + Ms).

poll(Fun, Deadline) ->
    case Fun() of
        true ->
            true;
        _ ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> false;
                false -> timer:sleep(10), poll(Fun, Deadline)
            end
    end.

%% Lets the Erlang side drop resources of dead processes.
drain_gc() ->
    [erlang:garbage_collect(P) || P <- processes()],
    ok.

%% Waits until the resources of dead processes are gone: at most
%% EnvsBefore envs alive, and every object they held released by its
%% interpreter's thread (not merely queued for release). Only then do
%% object counts mean anything.
settle(EnvsBefore) ->
    true = wait_until(fun() ->
                          drain_gc(),
                          {ok, #{envs_alive := Envs, releases_pending := Pending}} = py_nif:runtime_info(),
                          Envs =< EnvsBefore andalso Pending =:= 0
                      end),
    ok.

%% Objects tracked by Python's collector, after a full collection.
python_objects() ->
    {ok, N} = py:eval(<<"(__import__('gc').collect(), len(__import__('gc').get_objects()))[1]">>),
    N.

%% Adds logger handler Id, which sends {logged, Level, Text, Meta} to the
%% calling process for each event whose metadata Match accepts. Remove it
%% with logger:remove_handler(Id).
capture_logs(Id, Match) ->
    logger:add_handler(Id, ?MODULE, #{config => #{pid => self(), match => Match}}).

%% @private the handler of capture_logs/2
log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{pid := Pid, match := Match}}) ->
    case Match(Meta) of
        true -> Pid ! {logged, Level, log_text(Msg), Meta};
        false -> ok
    end.

%% The text of a logger event's msg, as a binary (for test log handlers).
log_text({string, S}) -> unicode:characters_to_binary(S);
log_text({Format, Args}) when is_list(Args) -> unicode:characters_to_binary(io_lib:format(Format, Args));
log_text(Other) -> unicode:characters_to_binary(io_lib:format("~p", [Other])).

%% A context in Mode for a test group, or the group is skipped with the
%% reason this Python refuses the mode.
start_group_context(Id, Mode, Config) ->
    case py_context:start_link(Id, Mode) of
        {ok, Ctx} ->
            unlink(Ctx),
            [{ctx, Ctx}, {mode, Mode} | Config];
        {error, {_, Why}} ->
            {skip, Why}
    end.

%% Restarts the application with a pool of 2 isolated contexts (spec §11),
%% so a suite's cases run unchanged against Python in OS processes.
start_isolated_pool() ->
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, context_mode, isolated),
    ok = application:set_env(erlang_python, num_contexts, 2),
    ok = start(),
    {ok, #{mode := isolated}} = py_context:info(py:context(1)),
    ok.

stop_isolated_pool() ->
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, context_mode, worker),
    ok = application:unset_env(erlang_python, num_contexts),
    start().

stop_group_context(Config) ->
    case proplists:get_value(ctx, Config) of
        undefined -> ok;
        Ctx -> py_context:stop(Ctx)
    end.

%% A gate Python code waits at until the test opens it, in any interpreter
%% (Ctx's gets the module test_gate): `test_gate.wait(Gate)' returns once
%% open_gate(Gate) has run. Python waiting at a gate lets the test act
%% while that code is certainly still running, however slow the machine.
%% Each gate is a new file name under the test case's priv_dir.
gate(Config, Ctx) ->
    %% the module's code runs in the module's own namespace: one defined in
    %% this process's env would lose its globals when the process exits
    ok = py:exec(Ctx, <<"
import sys, types
if 'test_gate' not in sys.modules:
    gate = types.ModuleType('test_gate')
    exec('import os, time\\n'
         'def wait(path):\\n'
         '    while not os.path.exists(path):\\n'
         '        time.sleep(0.001)\\n', gate.__dict__)
    sys.modules['test_gate'] = gate
">>),
    Name = "gate_" ++ integer_to_list(erlang:unique_integer([positive])),
    list_to_binary(filename:join(proplists:get_value(priv_dir, Config), Name)).

open_gate(Gate) ->
    file:write_file(Gate, <<>>).

flush() ->
    receive _ -> flush() after 0 -> ok end.

%% N short-lived processes (100 at a time) each make an env on Ctx, use it
%% and exit.
churn(Ctx, N) ->
    Self = self(),
    lists:foreach(
      fun(_) ->
          Pids = [spawn(fun() ->
                            ok = py:exec(Ctx, <<"data = list(range(100))\nclass K: pass\nk = K()">>),
                            {ok, 100} = py:eval(Ctx, <<"len(data)">>),
                            Self ! {churned, self()}
                        end) || _ <- lists:seq(1, 100)],
          [receive {churned, P} -> ok end || P <- Pids]
      end, lists:seq(1, N div 100)).
