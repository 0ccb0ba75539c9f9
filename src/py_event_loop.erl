%% @doc The asyncio event loop, driven from Erlang (spec §6).
%%
%% One ordinary asyncio loop runs on a thread of its own in the main
%% interpreter; this server owns it (starts it, stops it, logs what goes
%% wrong on it) but is not on the call path: callers queue work on the loop
%% directly and wait in `receive'. An idle loop sleeps in epoll.
%%
%% ```
%% {ok, Loop} = py_event_loop:get_loop(),
%% LoopRef = py_event_loop:get_nif_ref(Loop),
%% ok = py_nif:event_loop_exec(LoopRef, <<"
%% import asyncio
%% async def double(x):
%%     await asyncio.sleep(0.01)
%%     return x * 2
%% ">>),
%% {ok, Ref} = py_event_loop:create_task(Loop, '__main__', double, [21]),
%% {ok, 42} = py_event_loop:await(Ref).
%% '''
%%
%% A function called through the loop may be a coroutine function (its
%% coroutine runs as an asyncio task and its result is the answer) or a
%% plain one (its result is the answer at once). `'__main__'' names are
%% looked up in the caller's `py:exec' envs (its bound context's first), then
%% in its event-loop namespace ({@link py_nif:event_loop_exec/2}), then in
%% the real `__main__'. Errors come back as for {@link py:call/3}.
%%
%% Timeouts: {@link await/1} and {@link run/3} wait 30 s. When `await'
%% times out the task goes on, and its answer can still be awaited; when
%% `run' times out the task is cancelled.
-module(py_event_loop).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, get_loop/0, get_nif_ref/1,
         create_task/3, create_task/4, await/1, await/2,
         run/3, run/4, spawn_task/3, spawn_task/4, info/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([loop/0, task_ref/0, run_options/0]).

-define(KEY, {?MODULE, loop}).
-define(DEFAULT_TIMEOUT, 30000).
-define(START_TIMEOUT, 10000).

-type loop() :: py_nif:loop_ref().
-type task_ref() :: reference().
-type run_options() :: #{timeout => timeout(), kwargs => map()}.
-type name() :: atom() | binary().
-type result() :: {ok, term()} | {error, term()}.

%% ---------------------------------------------------------------------------
%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The running loop.
-spec get_loop() -> {ok, loop()} | {error, not_started}.
get_loop() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> {error, not_started};
        Loop -> {ok, Loop}
    end.

%% @doc The loop's native reference, for {@link py_nif:event_loop_exec/2}
%% and {@link py_nif:event_loop_eval/2}.
-spec get_nif_ref(loop()) -> py_nif:loop_ref().
get_nif_ref(Loop) when is_reference(Loop) ->
    Loop.

%% @doc Starts `Module:Function(*Args)' on the loop; collect the answer with
%% {@link await/2}. Errors, including those in queuing, come from `await'.
-spec create_task(name(), name(), list()) -> task_ref().
create_task(Module, Function, Args) ->
    create_task(Module, Function, Args, #{}).

%% @doc `create_task(Loop, Module, Function, Args)' starts a task on `Loop'
%% and returns `{ok, Ref}'; `create_task(Module, Function, Args, Kwargs)'
%% starts one, with keyword arguments, on the running loop and returns `Ref'.
-spec create_task(loop(), name(), name(), list()) -> {ok, task_ref()} | {error, term()};
                 (name(), name(), list(), map()) -> task_ref().
create_task(Loop, Module, Function, Args) when is_reference(Loop) ->
    Ref = make_ref(),
    case submit(Loop, Ref, task, Module, Function, Args, #{}) of
        Id when is_integer(Id) -> {ok, Ref};
        {error, _} = Error -> Error
    end;
create_task(Module, Function, Args, Kwargs) ->
    Ref = make_ref(),
    Submitted = with_loop(fun(Loop) -> submit(Loop, Ref, task, Module, Function, Args, Kwargs) end),
    _ = case Submitted of
            Id when is_integer(Id) -> ok;
            {error, _} = Error -> self() ! {Ref, Error}
        end,
    Ref.

%% @doc The answer of task `Ref', waiting up to 30 s.
-spec await(task_ref()) -> result().
await(Ref) ->
    await(Ref, ?DEFAULT_TIMEOUT).

%% @doc The answer of task `Ref', waiting up to `Timeout' ms. On
%% `{error, timeout}' the task goes on and may be awaited again.
-spec await(task_ref(), timeout()) -> result().
await(Ref, Timeout) when is_reference(Ref) ->
    case py_call:timeout(#{timeout => Timeout}, Timeout) of
        {ok, T} ->
            case py_call:wait_reply(Ref, T) of
                timeout -> {error, timeout};
                Result -> Result
            end;
        {error, _} = Error ->
            Error
    end;
await(_Ref, _Timeout) ->
    {error, {badarg, ref}}.

%% @doc Runs `Module:Function(*Args)' on the loop and waits for the answer (30 s).
-spec run(name(), name(), list()) -> result().
run(Module, Function, Args) ->
    run(Module, Function, Args, #{}).

%% @doc As {@link run/3}, with `#{timeout => Ms, kwargs => Map}'. On timeout
%% the task is cancelled.
-spec run(name(), name(), list(), run_options()) -> result().
run(Module, Function, Args, Opts) ->
    case run_options(Opts) of
        {ok, Timeout, Kwargs} ->
            with_loop(fun(Loop) ->
                              py_call:submit_and_wait(
                                Loop, Timeout,
                                fun(L, Tag) -> submit(L, Tag, task, Module, Function, Args, Kwargs) end)
                      end);
        {error, _} = Error ->
            Error
    end.

%% @doc Starts `Module:Function(*Args)' on the loop and forgets it. A
%% failure is logged (through `logger') with its traceback.
-spec spawn_task(name(), name(), list()) -> ok | {error, term()}.
spawn_task(Module, Function, Args) ->
    spawn_task(Module, Function, Args, #{}).

-spec spawn_task(name(), name(), list(), map()) -> ok | {error, term()}.
spawn_task(Module, Function, Args, Kwargs) ->
    with_loop(fun(Loop) ->
                      case submit(Loop, make_ref(), spawn, Module, Function, Args, Kwargs) of
                          Id when is_integer(Id) -> ok;
                          {error, _} = Error -> Error
                      end
              end).

%% @doc The loop's state: whether it runs, jobs queued, tasks whose answer
%% is awaited, jobs done, and the OS thread id of the loop thread.
-spec info() -> {ok, map()} | {error, not_started}.
info() ->
    case get_loop() of
        {ok, Loop} -> {ok, py_nif:event_loop_info(Loop)};
        {error, _} = Error -> Error
    end.

%% ---------------------------------------------------------------------------
%% gen_server

%% @private
-spec init([]) -> {ok, loop()} | {stop, term()}.
init([]) ->
    process_flag(trap_exit, true),
    Tag = make_ref(),
    case py_nif:event_loop_new(Tag) of
        {ok, Loop} ->
            receive
                {Tag, ok} ->
                    %% paths, imports, preload, venv (spec §12) before tasks run
                    case py_packages:join_loop(Loop) of
                        ok ->
                            persistent_term:put(?KEY, Loop),
                            {ok, Loop};
                        {error, Reason} ->
                            _ = py_nif:event_loop_stop(Loop),
                            {stop, {event_loop_failed, Reason}}
                    end;
                {Tag, {error, Reason}} ->
                    {stop, {event_loop_failed, Reason}}
            after ?START_TIMEOUT ->
                _ = py_nif:event_loop_stop(Loop),
                {stop, {event_loop_failed, timeout}}
            end;
        {error, Reason} ->
            {stop, {event_loop_failed, Reason}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), loop()) -> {reply, {error, unknown_call}, loop()}.
handle_call(_Request, _From, Loop) ->
    {reply, {error, unknown_call}, Loop}.

%% @private
-spec handle_cast(term(), loop()) -> {noreply, loop()}.
handle_cast(_Msg, Loop) ->
    {noreply, Loop}.

%% @private
-spec handle_info(term(), loop()) -> {noreply, loop()}.
handle_info({spawn_task_failed, #{caller := Caller, module := M, function := F, reason := Reason,
                                  traceback := Traceback}}, Loop) ->
    ?LOG_WARNING("py_event_loop: task ~ts:~ts spawned by ~p failed: ~p~n~ts",
                   [name_text(M), name_text(F), Caller, Reason, traceback_text(Traceback)]),
    {noreply, Loop};
handle_info({loop_error, Reason, Traceback}, Loop) ->
    ?LOG_ERROR("py_event_loop: an exception escaped the event loop: ~p~n~ts",
                 [Reason, traceback_text(Traceback)]),
    {noreply, Loop};
handle_info(_Msg, Loop) ->
    {noreply, Loop}.

%% @private
-spec terminate(term(), loop()) -> ok.
terminate(_Reason, Loop) ->
    persistent_term:erase(?KEY),
    _ = py_nif:event_loop_stop(Loop),
    ok.

%% ---------------------------------------------------------------------------
%% Internals

with_loop(Fun) ->
    case get_loop() of
        {ok, Loop} -> Fun(Loop);
        {error, not_started} -> {error, event_loop_not_running}
    end.

submit(Loop, Tag, Op, Module, Function, Args, Kwargs) ->
    py_nif:event_loop_submit(Loop, Tag, Op, lookup(Module), Module, Function, Args, Kwargs).

%% Where '__main__' names are looked up: the caller's py:exec envs (its
%% bound context's first), then its event-loop namespace.
lookup('__main__') ->
    Local = case get(py_local_env) of
                Envs when is_map(Envs) -> bound_first(Envs);
                _ -> []
            end,
    case get(py_event_loop_env) of
        undefined -> Local;
        LoopEnv -> Local ++ [LoopEnv]
    end;
lookup(_Module) ->
    [].

bound_first(Envs) ->
    case maps:take(get(py_context), Envs) of
        {Bound, Rest} -> [Bound | maps:values(Rest)];
        error -> maps:values(Envs)
    end.

run_options(Opts) when is_map(Opts) ->
    case maps:keys(maps:without([timeout, kwargs], Opts)) of
        [] ->
            case {py_call:timeout(Opts, ?DEFAULT_TIMEOUT), maps:get(kwargs, Opts, #{})} of
                {{ok, Timeout}, Kwargs} when is_map(Kwargs) -> {ok, Timeout, Kwargs};
                {{ok, _}, _} -> {error, {badarg, kwargs}};
                {{error, _} = Error, _} -> Error
            end;
        [Unknown | _] ->
            {error, {badarg, {option, Unknown}}}
    end;
run_options(_Opts) ->
    {error, {badarg, options}}.

name_text(Name) when is_atom(Name) -> atom_to_binary(Name);
name_text(Name) -> Name.

traceback_text(Traceback) when is_binary(Traceback) -> Traceback;
traceback_text(_) -> <<>>.
