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
%%
%% Without waiting (spec §9): {@link spawn_call/5} queues a call and returns
%% a `Ref'; the answer comes as a message `{py_response, Ref, Result}' (take
%% it with {@link await/2}, or in a gen_server's `handle_info'). {@link cast/5}
%% drops the result and logs a failure. Both run in the caller's env, as
%% {@link call/5} does, and cost what a call costs: no process is made.
%% {@link parallel/1} spreads calls over the pool. {@link stream_start/4}
%% sends what a generator (any iterable, an async generator) yields, one
%% message an item, with flow control (`window'); {@link stream/5} collects
%% it all. {@link interrupt/1} stops the call a context is running.
%%
%% ```
%% Ref = py:spawn_call(math, factorial, [20]),
%% {ok, 2432902008176640000} = py:await(Ref),
%% {ok, [0, 1, 2]} = py:stream(builtins, range, [3]).
%% '''
-module(py).

-export([exec/1, exec/2, exec/3,
         eval/1, eval/2, eval/3, eval/4,
         call/3, call/4, call/5, call/6,
         getattr/2, getattr/3, call_method/3, call_method/4, call_method/5,
         to_term/1, to_term/2, is_handle/1, buffer/1, buffer/2,
         context/0, context/1,
         register_function/2, register_function/3, unregister_function/1,
         last_traceback/0, version/0, info/0, memory_stats/0]).

%% Spec §9: calls that do not wait, streams, interrupts.
-export([spawn_call/3, spawn_call/4, spawn_call/5, await/1, await/2,
         cast/3, cast/4, cast/5, parallel/1, interrupt/1,
         stream/3, stream/4, stream/5, stream_start/3, stream_start/4,
         stream_ack/1, stream_ack/2, stream_cancel/1]).

%% Spec §12: packages, venvs, paths, imports, preload (see py_packages).
-export([activate_venv/1, deactivate_venv/0, venv_info/0, ensure_venv/2, ensure_venv/3,
         add_path/1, import/1, preload/1]).

-export_type([code/0, result/0, error/0, handle/0, buffer_info/0, options/0, call_ref/0, stream_ref/0, stream_options/0, module_name/0, function_name/0]).

-define(DEFAULT_TIMEOUT, 30000).

-type code() :: binary().
-type handle() :: reference().
%% ExceptionType is the class name as an atom; past the budget of new atoms
%% made for Python (see docs/getting-started.md) a new name is a binary.
-type error() :: {error, {ExceptionType :: atom() | binary(), Message :: binary()} | timeout | term()}.
-type result() :: {ok, term()} | error().
-type options() :: #{timeout => timeout()}.
-type module_name() :: atom() | binary().
%% What py:buffer/1 returns: `format' is the struct-module format of one
%% item (`<<"d">>', `<<"<f4">>'...), `shape' has one length per dimension
%% (`[]' for a 0-d array).
-type buffer_info() :: #{data := binary(), format := binary(), itemsize := non_neg_integer(),
                         shape := [non_neg_integer()]}.
-type function_name() :: atom() | binary().
%% What spawn_call returns; its answer comes as `{py_response, Ref, Result}'.
-type call_ref() :: reference().
%% A stream's messages are `{py_stream, Ref, {data, V} | done | {error, R}}'.
-type stream_ref() :: reference().
-type stream_options() :: #{ctx => pid(), kwargs => map(), owner => pid(), window => pos_integer()}.

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
exec(Ctx, Code, Opts) when is_pid(Ctx), node(Ctx) =/= node() ->
    %% a context on another node (spec §13): run there, in this process's proxy
    py_remote:call(Ctx, {exec, [Ctx, Code, Opts]});
exec(Ctx, Code, Opts) ->
    request(Ctx, Opts, {exec, Code}).

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
eval(Ctx, Expr, Locals, Opts) when is_pid(Ctx), node(Ctx) =/= node() ->
    %% a context on another node (spec §13): run there, in this process's proxy
    py_remote:call(Ctx, {eval, [Ctx, Expr, Locals, Opts]});
eval(Ctx, Expr, Locals, Opts) ->
    request(Ctx, Opts, {eval, Expr, Locals}).

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
call(Ctx, Module, Function, Args, Kwargs, Opts) when is_pid(Ctx), node(Ctx) =/= node() ->
    %% a context on another node (spec §13): run there, in this process's proxy
    py_remote:call(Ctx, {call, [Ctx, Module, Function, Args, Kwargs, Opts]});
call(Ctx, Module, Function, Args, Kwargs, Opts) ->
    request(Ctx, Opts, {call, Module, Function, Args, Kwargs}).

%% ---------------------------------------------------------------------------
%% Calls that do not wait (spec §9)

%% @doc `Module.Function(*Args)' on the default context, without waiting:
%% the answer comes as `{py_response, Ref, Result}' (see {@link await/2}).
%% Refusals (bad arguments, an overloaded context) answer the same way.
-spec spawn_call(module_name(), function_name(), list()) -> call_ref().
spawn_call(Module, Function, Args) ->
    spawn_call(Module, Function, Args, #{}).

%% @doc `spawn_call(Module, Function, Args, Kwargs)' on the default context,
%% or `spawn_call(Ctx, Module, Function, Args)'.
-spec spawn_call(module_name(), function_name(), list(), map()) -> call_ref();
                (pid(), module_name(), function_name(), list()) -> call_ref().
spawn_call(Module, Function, Args, Kwargs) when is_map(Kwargs) ->
    spawned(on_default_context(
              fun(Ctx) -> py_local_env:with(Ctx, fun(Env) -> py_ops:spawn_call(Env, {call, Module, Function, Args, Kwargs}) end) end));
spawn_call(Ctx, Module, Function, Args) ->
    spawn_call(Ctx, Module, Function, Args, #{}).

%% @doc `Module.Function(*Args, **Kwargs)' on context `Ctx', in the caller's
%% env there, without waiting.
-spec spawn_call(pid(), module_name(), function_name(), list(), map()) -> call_ref().
spawn_call(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx), node(Ctx) =/= node() ->
    py_remote:spawn_call(Ctx, [Ctx, Module, Function, Args, Kwargs]);
spawn_call(Ctx, Module, Function, Args, Kwargs) ->
    spawned(py_local_env:with(Ctx, fun(Env) -> py_ops:spawn_call(Env, {call, Module, Function, Args, Kwargs}) end)).

spawned({error, Reason}) -> py_nif:async_failed(Reason);
spawned(Ref) -> Ref.

%% @doc The answer of {@link spawn_call/5}, waiting up to 30 s.
-spec await(call_ref()) -> result().
await(Ref) ->
    await(Ref, ?DEFAULT_TIMEOUT).

%% @doc The answer of {@link spawn_call/5}. `{error, timeout}' leaves the
%% call running, to be awaited again; only the process that spawned the
%% call may await it (`{error, not_owner}'). A Python exception's traceback
%% is kept for {@link last_traceback/0}.
-spec await(call_ref(), timeout()) -> result() | {error, not_owner}.
await(Ref, Timeout) when is_reference(Ref), node(Ref) =/= node() ->
    %% a spawn_call on another node's context (spec §13)
    case py_call:timeout(#{timeout => Timeout}, ?DEFAULT_TIMEOUT) of
        {ok, T} -> py_remote:await(Ref, T);
        {error, _} = Error -> Error
    end;
await(Ref, Timeout) ->
    await_here(Ref, Timeout).

await_here(Ref, Timeout) ->
    case {py_call:timeout(#{timeout => Timeout}, ?DEFAULT_TIMEOUT), py_nif:async_owner(Ref)} of
        {{error, _} = Error, _} ->
            Error;
        {_, {error, _} = Error} ->
            Error;
        {{ok, T}, {ok, Owner}} when Owner =:= self() ->
            receive
                {py_response, Ref, Result} -> keep_traceback(Ref, Result)
            after T ->
                {error, timeout}
            end;
        {_, {ok, _}} ->
            {error, not_owner}
    end.

keep_traceback(Ref, {error, {_, _}} = Result) ->
    case py_nif:async_traceback(Ref) of
        Traceback when is_binary(Traceback) -> put(py_last_traceback, Traceback);
        undefined -> ok
    end,
    Result;
keep_traceback(_Ref, Result) ->
    Result.

%% @doc `Module.Function(*Args)' on the default context; its result is
%% dropped, a failure (a Python exception with its traceback) is logged
%% through `logger'. `{error, Reason}' when refused before it was queued.
-spec cast(module_name(), function_name(), list()) -> ok | error().
cast(Module, Function, Args) ->
    cast(Module, Function, Args, #{}).

%% @doc `cast(Module, Function, Args, Kwargs)' on the default context, or
%% `cast(Ctx, Module, Function, Args)'.
-spec cast(module_name(), function_name(), list(), map()) -> ok | error();
          (pid(), module_name(), function_name(), list()) -> ok | error().
cast(Module, Function, Args, Kwargs) when is_map(Kwargs) ->
    on_default_context(
      fun(Ctx) -> py_local_env:with(Ctx, fun(Env) -> py_ops:cast(Env, {call, Module, Function, Args, Kwargs}) end) end);
cast(Ctx, Module, Function, Args) ->
    cast(Ctx, Module, Function, Args, #{}).

-spec cast(pid(), module_name(), function_name(), list(), map()) -> ok | error().
cast(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx), node(Ctx) =/= node() ->
    py_remote:call(Ctx, {cast, [Ctx, Module, Function, Args, Kwargs]});
cast(Ctx, Module, Function, Args, Kwargs) ->
    py_local_env:with(Ctx, fun(Env) -> py_ops:cast(Env, {call, Module, Function, Args, Kwargs}) end).

%% @doc Runs the calls `[{Module, Function, Args}]' (or `{M, F, A, Kwargs}')
%% spread over the pool's contexts, at the same time where the mode allows
%% (owngil), and answers `{ok, [Value]}' in the order given, or the first
%% `{error, Reason}' in that order (the calls still running are then
%% cancelled). Waits up to 30 s in all.
-spec parallel([{module_name(), function_name(), list()} | {module_name(), function_name(), list(), map()}]) ->
          {ok, [term()]} | error().
parallel(Calls) when is_list(Calls) ->
    case {py_context_pool:size(), lists:all(fun is_call/1, Calls)} of
        {_, false} ->
            {error, {badarg, calls}};
        {0, true} ->
            {error, not_started};
        {Size, true} ->
            First = atomics:add_get(persistent_term:get({py_context_pool, next}), 1, length(Calls)),
            Refs = [spawn_on_slot((First + I) rem Size + 1, Call) || {I, Call} <- enumerate(Calls)],
            Deadline = erlang:monotonic_time(millisecond) + ?DEFAULT_TIMEOUT,
            collect_parallel(Refs, Deadline, [])
    end;
parallel(_Calls) ->
    {error, {badarg, calls}}.

is_call({M, F, A}) -> is_list(A) andalso (is_atom(M) orelse is_binary(M)) andalso (is_atom(F) orelse is_binary(F));
is_call({M, F, A, Kw}) -> is_map(Kw) andalso is_call({M, F, A});
is_call(_) -> false.

enumerate(List) -> lists:zip(lists:seq(1, length(List)), List).

spawn_on_slot(Slot, Call) ->
    {M, F, A, Kw} = case Call of
                        {M0, F0, A0} -> {M0, F0, A0, #{}};
                        Four -> Four
                    end,
    case py_context_registry:pool_pid(Slot) of
        {ok, Ctx} -> spawn_call(Ctx, M, F, A, Kw);
        error -> spawn_call(M, F, A, Kw)  % that slot is restarting
    end.

collect_parallel([], _Deadline, Acc) ->
    {ok, lists:reverse(Acc)};
collect_parallel([Ref | Rest] = Refs, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    case await(Ref, Left) of
        {ok, Value} ->
            collect_parallel(Rest, Deadline, [Value | Acc]);
        {error, timeout} = Timeout ->
            abandon(Refs),
            Timeout;
        {error, _} = Error ->
            abandon(Rest),
            Error
    end.

%% Calls whose answers nobody will take: stopped, and an answer already on
%% its way taken, so none is left in the caller's mailbox.
abandon(Refs) ->
    [case py_nif:async_cancel(Ref) of
         cancelled -> ok;
         finished -> receive {py_response, Ref, _} -> ok after ?DEFAULT_TIMEOUT -> ok end
     end || Ref <- Refs],
    ok.

%% @doc Raises `erlang.Interrupted' in the call context `Ctx' is running: it
%% answers `{error, interrupted}' (unless its code catches the exception);
%% calls queued behind it run as usual. `not_running' when the context is
%% idle. Code blocked in a C call sees it when the call returns.
-spec interrupt(pid()) -> ok | not_running | {error, term()}.
interrupt(Ctx) when is_pid(Ctx), node(Ctx) =/= node() ->
    py_remote:on_node(node(Ctx), py, {interrupt, [Ctx]});
interrupt(Ctx) ->
    case py_context_registry:lookup(Ctx) of
        {ok, {py_isolated, _, _, _, _} = CtxRef} -> py_isolated_call:interrupt(CtxRef);
        {ok, CtxRef} -> py_nif:context_interrupt(CtxRef);
        error -> {error, context_not_running}
    end.

%% ---------------------------------------------------------------------------
%% Streams (spec §9); the machinery is in py_stream

%% @doc Everything `Module.Function(*Args)' yields (a generator, any
%% iterable, an async generator), on the default context: `{ok, [Item]}',
%% or `{error, Reason}' if it raised. Waits up to 30 s in all.
-spec stream(module_name(), function_name(), list()) -> {ok, list()} | error().
stream(Module, Function, Args) ->
    stream(Module, Function, Args, #{}).

-spec stream(module_name(), function_name(), list(), map()) -> {ok, list()} | error().
stream(Module, Function, Args, Kwargs) ->
    py_stream:collect(stream_start(Module, Function, Args, #{kwargs => Kwargs}), ?DEFAULT_TIMEOUT).

%% @doc As {@link stream/4} on context `Ctx', waiting as long as it takes.
-spec stream(pid(), module_name(), function_name(), list(), map()) -> {ok, list()} | error().
stream(Ctx, Module, Function, Args, Kwargs) ->
    py_stream:collect(stream_start(Module, Function, Args, #{ctx => Ctx, kwargs => Kwargs}), infinity).

%% @doc Starts streaming what `Module.Function(*Args)' yields, on the
%% default context: `{ok, Ref}', then `{py_stream, Ref, {data, Item}}' for
%% each item and `{py_stream, Ref, done}' (or `{py_stream, Ref, {error, R}}').
-spec stream_start(module_name(), function_name(), list()) -> {ok, stream_ref()} | error().
stream_start(Module, Function, Args) ->
    stream_start(Module, Function, Args, #{}).

%% @doc As {@link stream_start/3}, with options: `ctx' (the context; default
%% the caller's), `kwargs', `owner' (the process the messages go to; default
%% the caller; the stream is cancelled when it exits), `window' (at most
%% this many items unacknowledged, see {@link stream_ack/2}; default no
%% limit). The stream advances in steps on its context's queue: while it
%% waits on its window, other calls run there. It runs in the caller's env.
%% A context on another node works the same (spec §13), the owner on any node.
-spec stream_start(module_name(), function_name(), list(), stream_options()) -> {ok, stream_ref()} | error().
stream_start(Module, Function, Args, Opts) ->
    py_stream:start(Module, Function, Args, Opts, fun on_default_context/1).

%% @doc The owner took one more item of a stream with a `window'.
-spec stream_ack(stream_ref()) -> ok | error().
stream_ack(Ref) ->
    stream_ack(Ref, 1).

%% @doc The owner took `Count' more items; the stream goes on if it had
%% stopped at its window. Acknowledging a stream that has ended is harmless.
-spec stream_ack(stream_ref(), pos_integer()) -> ok | error().
stream_ack(Ref, Count) ->
    py_stream:ack(Ref, Count).

%% @doc Stops a stream: its generator is closed on its context's thread (a
%% `finally' runs), and no message of the stream comes after this returns
%% (those already in the caller's mailbox are removed). Cancelling twice,
%% or a stream that has ended, is fine.
-spec stream_cancel(stream_ref()) -> ok | error().
stream_cancel(Ref) ->
    py_stream:cancel(Ref).

%% ---------------------------------------------------------------------------
%% Handles: Python objects with no Erlang form

%% @doc `getattr(Handle, Name)'.
-spec getattr(handle(), atom() | binary()) -> result().
getattr(Handle, Name) ->
    getattr(Handle, Name, #{}).

-spec getattr(handle(), atom() | binary(), options()) -> result().
getattr(Handle, Name, Opts) ->
    on_handle(Handle, Opts, {getattr, Handle, Name}).

%% @doc `Handle.Method(*Args)'.
-spec call_method(handle(), atom() | binary(), list()) -> result().
call_method(Handle, Method, Args) ->
    call_method(Handle, Method, Args, #{}, #{}).

-spec call_method(handle(), atom() | binary(), list(), map()) -> result().
call_method(Handle, Method, Args, Kwargs) ->
    call_method(Handle, Method, Args, Kwargs, #{}).

-spec call_method(handle(), atom() | binary(), list(), map(), options()) -> result().
call_method(Handle, Method, Args, Kwargs, Opts) ->
    on_handle(Handle, Opts, {call_method, Handle, Method, Args, Kwargs}).

%% @doc Converts the object to a term, turning a set, dict view, range or
%% other mapping at the top level into a list or map.
-spec to_term(handle()) -> result().
to_term(Handle) ->
    to_term(Handle, #{}).

-spec to_term(handle(), options()) -> result().
to_term(Handle, Opts) ->
    on_handle(Handle, Opts, {to_term, Handle}).

%% @doc The bytes and layout of an object that exports a buffer (a numpy
%% array, `array.array', `memoryview', `bytes'...): one flat copy of its
%% C-contiguous bytes at most, never element by element (spec §10).
%% `{error, not_a_buffer}' for an object without one, `{error,
%% not_contiguous}' for a strided view (`numpy.ascontiguousarray' makes one).
%%
%% ```
%% {ok, A} = py:eval(<<"__import__('array').array('d', [1.5, 2.5])">>),
%% {ok, #{data := <<1.5:64/float-native, 2.5:64/float-native>>,
%%        format := <<"d">>, itemsize := 8, shape := [2]}} = py:buffer(A).
%% '''
-spec buffer(handle()) -> {ok, buffer_info()} | error().
buffer(Handle) ->
    buffer(Handle, #{}).

-spec buffer(handle(), options()) -> {ok, buffer_info()} | error().
buffer(Handle, Opts) ->
    on_handle(Handle, Opts, {buffer, Handle}).

%% @doc True for an opaque Python object handle.
-spec is_handle(term()) -> boolean().
is_handle(Term) ->
    py_nif:is_handle(Term) orelse py_isolated_call:is_handle(Term).

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
    Contexts = [maps:merge(#{pid => Pid, pool_slot => Slot}, py_ops:context_info(Ref))
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
%% Packages, venvs, paths (spec §12): every interpreter, running and future.
%% Details and failure shapes in py_packages and py_venv.

%% @doc Puts venv `Dir''s site-packages (and its `.pth' entries) on
%% `sys.path' in every interpreter. A venv of another Python version is
%% refused: `{error, {venv_python_mismatch, #{venv, running, path}}}'.
-spec activate_venv(file:name_all()) -> ok | {error, term()}.
activate_venv(Dir) ->
    py_packages:activate_venv(Dir).

%% @doc Takes the active venv off `sys.path' everywhere.
-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    py_packages:deactivate_venv().

%% @doc `{ok, #{active := true, path, version, site_packages,
%% system_site_packages}}', or `{ok, #{active := false}}'.
-spec venv_info() -> {ok, map()}.
venv_info() ->
    py_packages:venv_info().

%% @doc As {@link ensure_venv/3} with no options.
-spec ensure_venv(file:name_all(), [unicode:chardata()] | file:name_all()) -> ok | {error, term()}.
ensure_venv(Dir, Requirements) ->
    ensure_venv(Dir, Requirements, #{}).

%% @doc Makes venv `Dir' if it is missing, installs `Requirements' (a list
%% of requirement strings, or a requirements file) with pip unless they are
%% unchanged since the last install, and activates it. `Opts': `find_links',
%% `no_index', `index_url', `extra_args' (pip's options) and
%% `system_site_packages'. pip failing gives `{error, {pip_failed, Output}}'.
-spec ensure_venv(file:name_all(), [unicode:chardata()] | file:name_all(), map()) -> ok | {error, term()}.
ensure_venv(Dir, Requirements, Opts) ->
    py_venv:ensure(Dir, Requirements, Opts).

%% @doc Puts directory `Dir' first on `sys.path' in every interpreter.
-spec add_path(file:name_all()) -> ok | {error, term()}.
add_path(Dir) ->
    py_packages:add_path(Dir).

%% @doc Imports `Module' in every interpreter.
-spec import(atom() | unicode:chardata()) -> ok | {error, term()}.
import(Module) ->
    py_packages:import(Module).

%% @doc Runs `Code' in every interpreter before any later user code there;
%% envs made afterwards start with the names it defines.
-spec preload(unicode:chardata()) -> ok | {error, term()}.
preload(Code) ->
    py_packages:preload(Code).

%% ---------------------------------------------------------------------------
%% Internals

%% A request on context Ctx, once its arguments are known to be sane (a
%% bad timeout must be refused before anything is queued: the reply would
%% otherwise land in the mailbox later).
request(Ctx, _Opts, _Op) when not is_pid(Ctx) ->
    {error, {badarg, context}};
request(Ctx, Opts, Op) ->
    case py_call:timeout(Opts, infinity) of
        {ok, Timeout} -> py_ops:run(Ctx, Timeout, Op);
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

%% An operation on a handle, once its options are known to be sane.
on_handle(Handle, Opts, Op) ->
    case py_call:timeout(Opts, ?DEFAULT_TIMEOUT) of
        {ok, Timeout} -> py_ops:on_handle(Handle, Timeout, Op);
        {error, _} = Error -> Error
    end.

