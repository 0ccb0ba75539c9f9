%% @doc The NIF library. Every function here is a regular NIF that returns
%% at once: requests are copied onto a context's queue and answered later
%% with a message `{Tag, Result}' (or `{Tag, {error, Reason}, Traceback}'
%% for a Python exception). Use {@link py} rather than these directly.
-module(py_nif).

-export([runtime_info/0, map_marker/0, finish_maps/1, context_new/3, context_stop/2, context_info/1, env_new/1,
         exec/3, eval/4, call/6, handle_getattr/3, handle_call_method/5, handle_to_term/2, handle_buffer/2,
         ctx_exec/4, ctx_eval/5, cancel/2, is_handle/1, callback_reply/2, callback_name/2,
         callback_begin/1, callback_names_reset/0, output_written/1, output_reset/0,
         event_loop_new/1, event_loop_stop/1, event_loop_info/1, event_loop_env_new/0,
         event_loop_submit/8, event_loop_code/6,
         context_interrupt/1, spawn_call/5, cast/5, async_failed/1, async_new/0, async_set_traceback/2, async_owner/1, async_traceback/1,
         async_cancel/1, stream_start/7, stream_ack/2, stream_cancel/1, stream_forward/2, stream_fail/2,
         release_token/2, release_token_info/1, encode_request/1, atoms_from_python/1]).

%% The event loop's per-process namespace (spec §6): these wait for the reply.
-export([event_loop_exec/2, event_loop_eval/2]).

-export([priv_dir/0]).

%% Explicit envs (spec §3): these wait for the reply, in `receive'.
-export([context_exec/2, context_exec/3, context_exec/4,
         context_eval/3, context_eval/4, context_eval/5]).

-nifs([runtime_info/0, map_marker/0, finish_maps/1, context_new/3, context_stop/2, context_info/1, env_new/1,
       exec/3, eval/4, call/6, handle_getattr/3, handle_call_method/5, handle_to_term/2, handle_buffer/2,
       ctx_exec/4, ctx_eval/5, cancel/2, is_handle/1, callback_reply/2, callback_name/2,
       callback_begin/1, callback_names_reset/0, output_written/1, output_reset/0,
       event_loop_new/1, event_loop_stop/1, event_loop_info/1, event_loop_env_new/0,
       event_loop_submit/8, event_loop_code/6,
       context_interrupt/1, spawn_call/5, cast/5, async_failed/1, async_new/0, async_set_traceback/2, async_owner/1, async_traceback/1,
       async_cancel/1, stream_start/7, stream_ack/2, stream_cancel/1, stream_forward/2, stream_fail/2,
       release_token/2, release_token_info/1, encode_request/1, atoms_from_python/1]).

-on_load(load/0).

-type ctx_ref() :: reference() | py_isolated_call:ctx_ref().
-type loop_ref() :: reference().
-type env_ref() :: reference() | py_isolated_call:env().
-type handle() :: reference().
-type request_id() :: pos_integer().
-type submitted() :: request_id() | {error, term()}.
-type call_ref() :: reference().
-type stream_ref() :: reference().
-export_type([ctx_ref/0, loop_ref/0, env_ref/0, handle/0, call_ref/0, stream_ref/0]).

load() ->
    Path = filename:join(priv_dir(), "erlang_python_nif"),
    Info = maps:from_list([{K, V} || K <- [python_home, python_executable, python_path],
                                     {ok, V} <- [application:get_env(erlang_python, K)]]),
    erlang:load_nif(Path, Info).

%% @doc This application's priv directory, also when run from a checkout.
-spec priv_dir() -> file:filename().
priv_dir() ->
    case code:priv_dir(erlang_python) of
        {error, bad_name} ->
            filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir ->
            Dir
    end.

-define(NOT_LOADED, erlang:nif_error({not_loaded, ?MODULE})).

%% ---------------------------------------------------------------------------
%% Explicit envs

%% @doc Runs `Code' on the context `CtxRef' (from {@link py_context:get_nif_ref/1})
%% in the context's shared namespace.
-spec context_exec(ctx_ref(), binary()) -> ok | {error, term()}.
context_exec(CtxRef, Code) ->
    context_exec(CtxRef, Code, undefined, #{}).

%% @doc Runs `Code' on the context `CtxRef' in `Env' (from
%% {@link py_context:create_local_env/1}). `{error, env_wrong_interpreter}'
%% when `Env' belongs to another interpreter.
-spec context_exec(ctx_ref(), binary(), env_ref()) -> ok | {error, term()}.
context_exec(CtxRef, Code, Env) ->
    context_exec(CtxRef, Code, Env, #{}).

%% @doc As {@link context_exec/3}, with `#{timeout => Ms}' (default `infinity').
-spec context_exec(ctx_ref(), binary(), env_ref() | undefined, map()) -> ok | {error, term()}.
context_exec(CtxRef, Code, Env, Opts) when is_reference(CtxRef), node(CtxRef) =/= node() ->
    %% a context on another node (spec §13): run there by this process's proxy
    py_remote:call_on(node(CtxRef), {context_exec, [CtxRef, Code, Env, Opts]});
context_exec({py_isolated, _, _, _, _} = CtxRef, Code, Env, Opts) ->
    %% an isolated context (spec §11)
    on_isolated(CtxRef, Env, Opts, {exec, Code});
context_exec(CtxRef, Code, Env, Opts) ->
    on_context(CtxRef, Env, Opts, fun(Ref, Tag) -> ctx_exec(Ref, Tag, Code, Env) end).

%% @doc Evaluates `Expr' with `Locals' on the context `CtxRef' in its shared
%% namespace.
-spec context_eval(ctx_ref(), binary(), map()) -> {ok, term()} | {error, term()}.
context_eval(CtxRef, Expr, Locals) ->
    context_eval(CtxRef, Expr, Locals, undefined, #{}).

%% @doc Evaluates `Expr' with `Locals' on the context `CtxRef' in `Env'.
-spec context_eval(ctx_ref(), binary(), map(), env_ref()) -> {ok, term()} | {error, term()}.
context_eval(CtxRef, Expr, Locals, Env) ->
    context_eval(CtxRef, Expr, Locals, Env, #{}).

%% @doc As {@link context_eval/4}, with `#{timeout => Ms}' (default `infinity').
-spec context_eval(ctx_ref(), binary(), map(), env_ref() | undefined, map()) -> {ok, term()} | {error, term()}.
context_eval(CtxRef, Expr, Locals, Env, Opts) when is_reference(CtxRef), node(CtxRef) =/= node() ->
    py_remote:call_on(node(CtxRef), {context_eval, [CtxRef, Expr, Locals, Env, Opts]});
context_eval({py_isolated, _, _, _, _} = CtxRef, Expr, Locals, Env, Opts) ->
    on_isolated(CtxRef, Env, Opts, {eval, Expr, Locals});
context_eval(CtxRef, Expr, Locals, Env, Opts) ->
    on_context(CtxRef, Env, Opts, fun(Ref, Tag) -> ctx_eval(Ref, Tag, Expr, Locals, Env) end).

on_context(CtxRef, Env, Opts, Submit) ->
    %% an isolated context's env, as the env of another interpreter
    case py_isolated_call:is_env(Env) of
        true -> {error, env_wrong_interpreter};
        false -> py_call:submit_and_wait(CtxRef, Opts, infinity, Submit)
    end.

on_isolated(CtxRef, Env, Opts, Op) ->
    case py_call:timeout(Opts, infinity) of
        {ok, Timeout} -> py_isolated_call:context_request(CtxRef, Env, Timeout, Op);
        {error, _} = Error -> Error
    end.

%% ---------------------------------------------------------------------------
%% Event-loop namespaces

%% @doc Runs `Code' on the event loop `LoopRef' (from
%% {@link py_event_loop:get_nif_ref/1}) in the calling process's event-loop
%% namespace, made on first use and released when the process exits. Names
%% defined here are found by {@link py_event_loop:create_task/4} and friends
%% under `'__main__''. The code runs on the loop's thread: it should not block.
-spec event_loop_exec(loop_ref(), binary()) -> ok | {error, term()}.
event_loop_exec(LoopRef, Code) ->
    on_loop(LoopRef, fun(Ref, Tag) -> event_loop_code(Ref, Tag, loop_env(), exec, Code, #{}) end).

%% @doc Evaluates `Expr' in the calling process's event-loop namespace.
-spec event_loop_eval(loop_ref(), binary()) -> {ok, term()} | {error, term()}.
event_loop_eval(LoopRef, Expr) ->
    on_loop(LoopRef, fun(Ref, Tag) -> event_loop_code(Ref, Tag, loop_env(), eval, Expr, #{}) end).

on_loop(LoopRef, Submit) ->
    py_call:submit_and_wait(LoopRef, infinity, Submit).

%% The calling process's event-loop namespace: a resource in its process
%% dictionary, so it goes when the process does.
loop_env() ->
    case get(py_event_loop_env) of
        undefined ->
            Env = event_loop_env_new(),
            put(py_event_loop_env, Env),
            Env;
        Env ->
            Env
    end.

%% ---------------------------------------------------------------------------
%% NIFs

%% @doc Which Python runs, and counts of live native objects.
-spec runtime_info() -> {ok, map()} | {error, term()}.
runtime_info() -> ?NOT_LOADED.

%% @doc The reference that marks maps a context thread left for the
%% receiver to build (see `py_maps').
-spec map_marker() -> reference().
map_marker() -> ?NOT_LOADED.

%% @doc Builds, on the caller's scheduler, every map a context thread left
%% for the receiver (see `py_maps').
-spec finish_maps(term()) -> {ok, term()} | {error, {duplicate_key, term()} | no_memory} | too_deep.
finish_maps(_Term) -> ?NOT_LOADED.

%% @doc Starts a context thread; it sends `{Tag, ok | {error, Reason}}' to
%% the caller when ready. The context stops when the caller dies.
-spec context_new(py_context:mode(), map(), reference()) -> {ok, ctx_ref()} | {error, term()}.
context_new(_Mode, _Opts, _Tag) -> ?NOT_LOADED.

%% @doc Stops a context; `{Tag, stopped}' follows once Python has let go.
-spec context_stop(ctx_ref(), reference()) -> ok | already_stopped | {error, term()}.
context_stop(_Ref, _Tag) -> ?NOT_LOADED.

-spec context_info(ctx_ref()) -> map() | {error, term()}.
context_info(_Ref) -> ?NOT_LOADED.

%% @doc A new (empty) process-bound namespace on a context.
-spec env_new(ctx_ref()) -> {ok, env_ref()} | {error, term()}.
env_new(_Ref) -> ?NOT_LOADED.

-spec exec(env_ref(), reference(), binary()) -> submitted().
exec(_Env, _Tag, _Code) -> ?NOT_LOADED.

-spec eval(env_ref(), reference(), binary(), map()) -> submitted().
eval(_Env, _Tag, _Expr, _Locals) -> ?NOT_LOADED.

-spec call(env_ref(), reference(), atom() | binary(), atom() | binary(), list(), map()) -> submitted().
call(_Env, _Tag, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

-spec handle_getattr(handle(), reference(), atom() | binary()) -> submitted().
handle_getattr(_Handle, _Tag, _Name) -> ?NOT_LOADED.

-spec handle_call_method(handle(), reference(), atom() | binary(), list(), map()) -> submitted().
handle_call_method(_Handle, _Tag, _Name, _Args, _Kwargs) -> ?NOT_LOADED.

-spec handle_to_term(handle(), reference()) -> submitted().
handle_to_term(_Handle, _Tag) -> ?NOT_LOADED.

-spec handle_buffer(handle(), reference()) -> submitted().
handle_buffer(_Handle, _Tag) -> ?NOT_LOADED.

-spec ctx_exec(ctx_ref(), reference(), binary(), env_ref() | undefined) -> submitted().
ctx_exec(_CtxRef, _Tag, _Code, _Env) -> ?NOT_LOADED.

-spec ctx_eval(ctx_ref(), reference(), binary(), map(), env_ref() | undefined) -> submitted().
ctx_eval(_CtxRef, _Tag, _Expr, _Locals, _Env) -> ?NOT_LOADED.

%% @doc Cancels request `Id' after a timeout. `cancelled': no reply will
%% come; `finished': the reply is in the mailbox or on its way.
-spec cancel(env_ref() | handle() | ctx_ref() | loop_ref(), request_id()) -> cancelled | finished | {error, term()}.
cancel(_Res, _Id) -> ?NOT_LOADED.

-spec is_handle(term()) -> boolean().
is_handle(_Term) -> ?NOT_LOADED.

%% @doc Answers call `Id' of Python's `erlang.call': `{ok, Value}' or
%% `{error, Class, Reason, Formatted}'.
-spec callback_reply(pos_integer(), {ok, term()} | {error, atom(), term(), binary()}) ->
          ok | nobody_waiting | {error, term()}.
callback_reply(_Id, _Result) -> ?NOT_LOADED.

%% @doc The calling process runs the Erlang function of call `Id': requests
%% it makes run nested in the context waiting for that call.
-spec callback_begin(pos_integer()) -> ok | {error, term()}.
callback_begin(_Id) -> ?NOT_LOADED.

%% @doc Forgets every registered name (py_callbacks starting afresh).
-spec callback_names_reset() -> ok.
callback_names_reset() -> ?NOT_LOADED.

%% @doc py_relay wrote (or gave up on) `Cost' bytes of Python output it was
%% sent: that much more may be sent to it.
-spec output_written(non_neg_integer()) -> ok | {error, term()}.
output_written(_Cost) -> ?NOT_LOADED.

%% @doc A new py_relay starts: output sent to the one before is gone.
-spec output_reset() -> ok.
output_reset() -> ?NOT_LOADED.

%% @doc Makes `erlang.<Name>' exist (or not) in Python.
-spec callback_name(binary(), boolean()) -> ok | {error, term()}.
callback_name(_Name, _Registered) -> ?NOT_LOADED.

%% @doc Starts an asyncio event loop on a thread of its own; it sends
%% `{Tag, ok | {error, Reason}}' to the caller when ready. The caller owns
%% the loop: failed spawned tasks are reported to it, and the loop stops when
%% it dies.
-spec event_loop_new(reference()) -> {ok, loop_ref()} | {error, term()}.
event_loop_new(_Tag) -> ?NOT_LOADED.

%% @doc Stops a loop: queued jobs are answered `{error, event_loop_stopped}',
%% running tasks are cancelled.
-spec event_loop_stop(loop_ref()) -> ok | already_stopped | {error, term()}.
event_loop_stop(_LoopRef) -> ?NOT_LOADED.

-spec event_loop_info(loop_ref()) -> map() | {error, term()}.
event_loop_info(_LoopRef) -> ?NOT_LOADED.

%% @doc A new namespace in the main interpreter, for event-loop code.
-spec event_loop_env_new() -> env_ref().
event_loop_env_new() -> ?NOT_LOADED.

%% @doc Queues `Module:Function(*Args, **Kwargs)' on the loop (`task': the
%% caller is answered `{Tag, Result}'; `spawn': nobody is). `Lookup': the
%% envs where `'__main__'' names are looked up first, in order.
-spec event_loop_submit(loop_ref(), reference(), task | spawn, [env_ref()], atom() | binary(),
                        atom() | binary(), list(), map()) -> submitted().
event_loop_submit(_LoopRef, _Tag, _Op, _Lookup, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

%% @doc Queues code to run (`exec') or evaluate (`eval') in `Env' on the loop.
-spec event_loop_code(loop_ref(), reference(), env_ref(), exec | eval, binary(), map()) -> submitted().
event_loop_code(_LoopRef, _Tag, _Env, _Op, _Code, _Locals) -> ?NOT_LOADED.

%% @doc Raises `erlang.Interrupted' in the request the context runs now, which
%% answers `{error, interrupted}'; `not_running' when none runs.
-spec context_interrupt(ctx_ref()) -> ok | not_running | {error, term()}.
context_interrupt(_CtxRef) -> ?NOT_LOADED.

%% @doc Queues `Module:Function(*Args, **Kwargs)' in `Env'; the answer comes
%% as `{py_response, Ref, Result}'.
-spec spawn_call(env_ref(), atom() | binary(), atom() | binary(), list(), map()) -> call_ref() | {error, term()}.
spawn_call(_Env, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

%% @doc Queues the call; nobody is answered, a failure is logged.
-spec cast(env_ref(), atom() | binary(), atom() | binary(), list(), map()) -> ok | {error, term()}.
cast(_Env, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

%% @doc A Ref answering `{py_response, Ref, {error, Reason}}' at once: a
%% spawn_call refused before it was queued.
-spec async_failed(term()) -> call_ref().
async_failed(_Reason) -> ?NOT_LOADED.

%% @private
%% A call ref of the calling process, answered by an Erlang process (an
%% isolated context's spawn_call): `{py_response, Ref, Result}'.
-spec async_new() -> call_ref().
async_new() -> ?NOT_LOADED.

%% @private
%% The traceback py:await/2 keeps for py:last_traceback/0.
-spec async_set_traceback(call_ref(), binary()) -> ok | {error, term()}.
async_set_traceback(_Ref, _Traceback) -> ?NOT_LOADED.

%% @doc The process a spawn_call's answer goes to.
-spec async_owner(call_ref()) -> {ok, pid()} | {error, term()}.
async_owner(_Ref) -> ?NOT_LOADED.

%% @doc The traceback of the exception a spawn_call raised, once answered.
-spec async_traceback(call_ref()) -> binary() | undefined.
async_traceback(_Ref) -> ?NOT_LOADED.

%% @doc `cancelled': no answer will come; `finished': it is in the mailbox
%% or on its way.
-spec async_cancel(call_ref()) -> cancelled | finished | {error, term()}.
async_cancel(_Ref) -> ?NOT_LOADED.

%% @doc Starts streaming what `Module:Function(*Args, **Kwargs)' returns to
%% `Owner', at most `Window' items unacknowledged (0: no limit).
-spec stream_start(env_ref(), pid(), non_neg_integer(), atom() | binary(), atom() | binary(), list(), map()) ->
          {ok, stream_ref()} | {error, term()}.
stream_start(_Env, _Owner, _Window, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

-spec stream_ack(stream_ref(), pos_integer()) -> ok | {error, term()}.
stream_ack(_Ref, _N) -> ?NOT_LOADED.

-spec stream_cancel(stream_ref()) -> ok | {error, term()}.
stream_cancel(_Ref) -> ?NOT_LOADED.

%% @doc Passes on a relayed stream message (py_relay built its maps, or wrote
%% the output before it).
-spec stream_forward(stream_ref(), term()) -> ok | {error, term()}.
stream_forward(_Ref, _Message) -> ?NOT_LOADED.

%% @doc Ends a stream with `{error, Reason}' and closes its iterator (a
%% relayed message py_relay could not finish).
-spec stream_fail(stream_ref(), term()) -> ok | {error, term()}.
stream_fail(_Ref, _Reason) -> ?NOT_LOADED.

%% @doc A token that sends `Msg' to the local process `Pid' once the VM has
%% garbage-collected every copy of it: an isolated context's env or handle
%% holds one, so the worker drops the object when Erlang does.
-spec release_token(pid(), term()) -> reference() | {error, badarg}.
release_token(_Pid, _Msg) -> ?NOT_LOADED.

%% @doc `{Pid, Msg}' of a token from {@link release_token/2}, or `error'
%% for any other term.
-spec release_token_info(term()) -> {pid(), term()} | error.
release_token_info(_Term) -> ?NOT_LOADED.

%% @doc `term_to_binary(Term)' for a request to an isolated context, under
%% the size rule of every request: `{error, {argument_too_large, Bytes}}'
%% for a term that would expand past 1 GiB.
-spec encode_request(term()) -> binary() | {error, {argument_too_large, pos_integer()}}.
encode_request(_Term) -> ?NOT_LOADED.

%% @private
%% Makes the atoms named by the binaries `Names' within the budget of new
%% atoms made for Python, which an isolated worker's answers share with
%% every in-process interpreter.
-spec atoms_from_python([binary()]) -> ok | {error, term()}.
atoms_from_python(_Names) -> ?NOT_LOADED.
