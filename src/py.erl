%% @doc Run Python from Erlang.
%%
%% Every call runs in a namespace owned by the calling process and the
%% context it names (its "process-bound env"): names defined by one process
%% are invisible to others, and they are released when the process exits.
%% Calls never run Python on the caller's scheduler: they are queued on the
%% context's own thread and the caller waits in `receive'.
%%
%% ```
%% Ctx = py:context(1),
%% ok = py:exec(Ctx, <<"state = 'hello'">>),
%% {ok, <<"hello">>} = py:eval(Ctx, <<"state">>),
%% {ok, 4.0} = py:call(math, sqrt, [16]).
%% '''
%%
%% Python exceptions come back as `{error, {Type, Message}}', e.g.
%% ``{error, {'ZeroDivisionError', <<"division by zero">>}}''; the traceback
%% of the latest one is available from {@link last_traceback/0}.
%%
%% Timeouts: calls without a context wait 30 s by default, calls naming a
%% context wait `infinity' unless told (`#{timeout => Ms}'). On timeout the
%% Python code is interrupted with `erlang.Interrupted' and the caller gets
%% `{error, timeout}'; the context stays usable.
-module(py).

-export([exec/1, exec/2, exec/3,
         eval/1, eval/2, eval/3, eval/4,
         call/3, call/4, call/5, call/6,
         getattr/2, getattr/3, call_method/3, call_method/4, call_method/5,
         to_term/1, to_term/2, is_handle/1,
         context/0, context/1,
         register_function/2, register_function/3, unregister_function/1,
         last_traceback/0, version/0, info/0, memory_stats/0]).

-export_type([code/0, result/0, error/0, handle/0, options/0]).

-define(DEFAULT_TIMEOUT, 30000).

-type code() :: binary().
-type handle() :: reference().
%% ExceptionType is the class name as an atom; past the budget of new atoms
%% made for Python (see docs/getting-started.md) a new name is a binary.
-type error() :: {error, {ExceptionType :: atom() | binary(), Message :: binary()} | timeout | term()}.
-type result() :: {ok, term()} | error().
-type options() :: #{timeout => timeout()}.
-type module_name() :: atom() | binary().
-type function_name() :: atom() | binary().

%% ---------------------------------------------------------------------------
%% exec

%% @doc Runs statements in the caller's env on its default context.
-spec exec(code()) -> ok | error().
exec(Code) ->
    on_default_context(fun(Ctx) -> exec(Ctx, Code, #{timeout => ?DEFAULT_TIMEOUT}) end).

%% @doc Runs statements in the caller's env on context `Ctx'.
-spec exec(pid(), code()) -> ok | error().
exec(Ctx, Code) ->
    exec(Ctx, Code, #{}).

-spec exec(pid(), code(), options()) -> ok | error().
exec(Ctx, Code, Opts) ->
    request(Ctx, Opts, fun(Env, Tag) -> py_nif:exec(Env, Tag, Code) end).

%% ---------------------------------------------------------------------------
%% eval

%% @doc Evaluates an expression in the caller's env on its default context.
-spec eval(code()) -> result().
eval(Expr) ->
    eval(Expr, #{}, ?DEFAULT_TIMEOUT).

%% @doc `eval(Ctx, Expr)' on a context, or `eval(Expr, Locals)' on the
%% default one. `Locals' maps names (atoms or binaries) to values bound for
%% this expression only.
-spec eval(pid(), code()) -> result();
          (code(), map()) -> result().
eval(Expr, Locals) when is_map(Locals) ->
    eval(Expr, Locals, ?DEFAULT_TIMEOUT);
eval(Ctx, Expr) ->
    eval(Ctx, Expr, #{}, #{}).

-spec eval(pid(), code(), map()) -> result();
          (code(), map(), timeout()) -> result().
eval(Expr, Locals, Timeout) when is_map(Locals) ->
    on_default_context(fun(Ctx) -> eval(Ctx, Expr, Locals, #{timeout => Timeout}) end);
eval(Ctx, Expr, Locals) ->
    eval(Ctx, Expr, Locals, #{}).

-spec eval(pid(), code(), map(), options()) -> result().
eval(Ctx, Expr, Locals, Opts) ->
    request(Ctx, Opts, fun(Env, Tag) -> py_nif:eval(Env, Tag, Expr, Locals) end).

%% ---------------------------------------------------------------------------
%% call

%% @doc Calls `Module.Function(*Args)' on the default context. `Module' is
%% imported on first use; `` '__main__' '' means the caller's env.
-spec call(module_name(), function_name(), list()) -> result().
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}, ?DEFAULT_TIMEOUT).

-spec call(pid(), module_name(), function_name(), list()) -> result();
          (module_name(), function_name(), list(), map()) -> result().
call(Module, Function, Args, Kwargs) when is_map(Kwargs) ->
    call(Module, Function, Args, Kwargs, ?DEFAULT_TIMEOUT);
call(Ctx, Module, Function, Args) ->
    call(Ctx, Module, Function, Args, #{}, #{}).

%% @doc `call(Ctx, Module, Function, Args, Kwargs)', or on the default
%% context `call(Module, Function, Args, Kwargs, Timeout)'.
-spec call(pid(), module_name(), function_name(), list(), map()) -> result();
          (module_name(), function_name(), list(), map(), timeout()) -> result().
call(Module, Function, Args, Kwargs, Timeout) when is_map(Kwargs) ->
    on_default_context(
      fun(Ctx) -> call(Ctx, Module, Function, Args, Kwargs, #{timeout => Timeout}) end);
call(Ctx, Module, Function, Args, Kwargs) ->
    call(Ctx, Module, Function, Args, Kwargs, #{}).

-spec call(pid(), module_name(), function_name(), list(), map(), options()) -> result().
call(Ctx, Module, Function, Args, Kwargs, Opts) ->
    request(Ctx, Opts, fun(Env, Tag) -> py_nif:call(Env, Tag, Module, Function, Args, Kwargs) end).

%% ---------------------------------------------------------------------------
%% Handles: Python objects with no Erlang form

%% @doc `getattr(Handle, Name)'.
-spec getattr(handle(), atom() | binary()) -> result().
getattr(Handle, Name) ->
    getattr(Handle, Name, #{}).

-spec getattr(handle(), atom() | binary(), options()) -> result().
getattr(Handle, Name, Opts) ->
    run_on_handle(Handle, Opts, fun(H, Tag) -> py_nif:handle_getattr(H, Tag, Name) end).

%% @doc `Handle.Method(*Args)'.
-spec call_method(handle(), atom() | binary(), list()) -> result().
call_method(Handle, Method, Args) ->
    call_method(Handle, Method, Args, #{}, #{}).

-spec call_method(handle(), atom() | binary(), list(), map()) -> result().
call_method(Handle, Method, Args, Kwargs) ->
    call_method(Handle, Method, Args, Kwargs, #{}).

-spec call_method(handle(), atom() | binary(), list(), map(), options()) -> result().
call_method(Handle, Method, Args, Kwargs, Opts) ->
    run_on_handle(Handle, Opts, fun(H, Tag) -> py_nif:handle_call_method(H, Tag, Method, Args, Kwargs) end).

%% @doc Converts the object to a term, turning a set, dict view, range or
%% other mapping at the top level into a list or map.
-spec to_term(handle()) -> result().
to_term(Handle) ->
    to_term(Handle, #{}).

-spec to_term(handle(), options()) -> result().
to_term(Handle, Opts) ->
    run_on_handle(Handle, Opts, fun(H, Tag) -> py_nif:handle_to_term(H, Tag) end).

%% @doc True for an opaque Python object handle.
-spec is_handle(term()) -> boolean().
is_handle(Term) ->
    py_nif:is_handle(Term).

%% ---------------------------------------------------------------------------
%% Contexts

%% @doc The context bound to the calling process; binds one of the pool's
%% contexts (round robin) on first use, and again if it died. Raises
%% `{no_context, Why}' when the pool has no live context.
-spec context() -> pid().
context() ->
    case default_context() of
        {ok, Pid} -> Pid;
        {error, Why} -> erlang:error({no_context, Why})
    end.

%% @doc The pid of pool context `N' (1-based). Raises
%% `{no_such_context, N}' if the pool has no such (live) context.
-spec context(pos_integer()) -> pid().
context(N) ->
    case is_integer(N) andalso N > 0 andalso py_context_registry:pool_pid(N) of
        {ok, Pid} -> Pid;
        _ -> erlang:error({no_such_context, N})
    end.

default_context() ->
    case get(py_context) of
        Pid when is_pid(Pid) ->
            case is_process_alive(Pid) of
                true -> {ok, Pid};
                false -> bind_context()
            end;
        _ ->
            bind_context()
    end.

%% Round robin over the pool, skipping a slot whose context is restarting.
bind_context() ->
    case py_context_pool:size() of
        0 ->
            {error, not_started};
        Size ->
            Next = atomics:add_get(persistent_term:get({py_context_pool, next}), 1, 1),
            bind_context([(Next + I) rem Size + 1 || I <- lists:seq(0, Size - 1)])
    end.

bind_context([]) ->
    {error, context_not_running};
bind_context([Slot | Rest]) ->
    case py_context_registry:pool_pid(Slot) of
        {ok, Pid} ->
            put(py_context, Pid),
            {ok, Pid};
        error ->
            bind_context(Rest)
    end.

%% ---------------------------------------------------------------------------
%% Erlang functions for Python

%% @doc Lets Python call `Fun(Args)' as `erlang.Name(*Args)',
%% `erlang.call(Name, *Args)' or `from erlang import Name'. The call runs in
%% a process of its own and may call Python again, even the same context.
%% An exception it raises reaches Python as `erlang.Error'.
-spec register_function(atom() | binary(), fun((list()) -> term())) -> ok | {error, term()}.
register_function(Name, Fun) when is_function(Fun, 1) ->
    py_callbacks:register(Name, Fun);
register_function(_Name, _Fun) ->
    {error, {badarg, function}}.

%% @doc As {@link register_function/2}, calling `Module:Function(Args)'.
-spec register_function(atom() | binary(), module(), atom()) -> ok | {error, term()}.
register_function(Name, Module, Function) when is_atom(Module), is_atom(Function) ->
    py_callbacks:register(Name, {Module, Function});
register_function(_Name, _Module, _Function) ->
    {error, {badarg, function}}.

%% @doc `erlang.Name' no longer exists in Python (calls raise `erlang.Error').
-spec unregister_function(atom() | binary()) -> ok | {error, term()}.
unregister_function(Name) ->
    py_callbacks:unregister(Name).

%% ---------------------------------------------------------------------------
%% Introspection

%% @doc The traceback of the latest Python exception this process got back,
%% as Python formats it.
-spec last_traceback() -> binary() | undefined.
last_traceback() ->
    get(py_last_traceback).

%% @doc The version of the Python that runs, as `sys.version' shows it.
-spec version() -> {ok, binary()} | {error, term()}.
version() ->
    case py_nif:runtime_info() of
        {ok, #{version := Version}} -> {ok, Version};
        {error, _} = Error -> Error
    end.

%% @doc Python, the contexts (mode, queue length, requests served), live
%% envs and handles, and the event loop (see {@link py_event_loop:info/0}).
-spec info() -> map().
info() ->
    Runtime = case py_nif:runtime_info() of
                  {ok, R} -> R;
                  {error, Why} -> #{python => {error, Why}}
              end,
    Contexts = [maps:merge(#{pid => Pid, pool_slot => Slot}, py_nif:context_info(Ref))
                || {Pid, Ref, _Mode, Slot} <- py_context_registry:contexts()],
    EventLoop = case py_event_loop:info() of
                    {ok, Loop} -> Loop;
                    {error, not_started} -> not_started
                end,
    Runtime#{contexts => lists:sort(fun(A, B) -> maps:get(pool_slot, A) =< maps:get(pool_slot, B) end,
                                    Contexts),
             event_loop => EventLoop}.

%% @doc Python's garbage collector counters and object count, from the
%% caller's default context.
-spec memory_stats() -> {ok, map()} | error().
memory_stats() ->
    Expr = <<"(__import__('gc').get_count(), __import__('gc').get_threshold(),"
             " len(__import__('gc').get_objects()), __import__('gc').get_stats(),"
             " __import__('tracemalloc').get_traced_memory()"
             " if __import__('tracemalloc').is_tracing() else None)">>,
    case eval(Expr) of
        {ok, {Count, Threshold, Objects, Stats, Traced}} ->
            Base = #{gc_count => Count, gc_threshold => Threshold, objects => Objects,
                     gc_stats => Stats},
            {ok, case Traced of
                     {Current, Peak} -> Base#{traced_memory_current => Current,
                                             traced_memory_peak => Peak};
                     none -> Base
                 end};
        {error, _} = Error ->
            Error
    end.

%% ---------------------------------------------------------------------------
%% Internals

%% A request on context Ctx, once its arguments are known to be sane (a
%% bad timeout must be refused before anything is queued: the reply would
%% otherwise land in the mailbox later).
request(Ctx, _Opts, _Submit) when not is_pid(Ctx) ->
    {error, {badarg, context}};
request(Ctx, Opts, Submit) ->
    case py_call:timeout(Opts, infinity) of
        {ok, Timeout} -> run(Ctx, Timeout, Submit);
        {error, _} = Error -> Error
    end.


%% Context-less calls use the bound context; if it died since binding,
%% bind another and try once more.
on_default_context(Fun) ->
    case default_context() of
        {ok, Ctx} ->
            case Fun(Ctx) of
                {error, context_not_running} ->
                    erase(py_context),
                    case default_context() of
                        {ok, Other} -> Fun(Other);
                        {error, _} = Error -> Error
                    end;
                Result ->
                    Result
            end;
        {error, _} = Error ->
            Error
    end.

%% The env of (calling process, Ctx), made on first use.
local_env(Ctx) ->
    case get(py_local_env) of
        #{Ctx := Env} -> {ok, Env};
        undefined -> new_local_env(Ctx, #{});
        Envs -> new_local_env(Ctx, Envs)
    end.

%% Envs of contexts that have died are dropped here, so a long-lived process
%% does not keep their namespaces (and everything in them) alive.
new_local_env(Ctx, Envs0) ->
    Envs = maps:filter(fun(Pid, _) -> is_process_alive(Pid) end, Envs0),
    case py_context_registry:lookup(Ctx) of
        {ok, CtxRef} ->
            case py_nif:env_new(CtxRef) of
                {ok, Env} ->
                    put(py_local_env, Envs#{Ctx => Env}),
                    {ok, Env};
                {error, _} = Error ->
                    Error
            end;
        error ->
            {error, context_not_running}
    end.

forget_env(Ctx) ->
    case get(py_local_env) of
        #{Ctx := _} = Envs -> put(py_local_env, maps:remove(Ctx, Envs));
        _ -> ok
    end.

run(Ctx, Timeout, Submit) ->
    case local_env(Ctx) of
        {ok, Env} ->
            case py_call:submit_and_wait(Env, Timeout, Submit) of
                {error, context_not_running} = Error ->
                    forget_env(Ctx),
                    Error;
                Result ->
                    Result
            end;
        {error, _} = Error ->
            Error
    end.

run_on_handle(Handle, Opts, Submit) ->
    py_call:submit_and_wait(Handle, Opts, ?DEFAULT_TIMEOUT, Submit).

