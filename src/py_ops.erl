%% @private
%% @doc An operation on a context of either kind: in-process ones queue it
%% through the NIF, isolated ones (spec §11) send it to their worker
%% ({@link py_isolated_call}). One place decides which, by the env or the
%% handle the operation goes through.
-module(py_ops).

-export([run/3, on_handle/3, spawn_call/2, cast/2, stream_start/4, context_info/1]).

-type op() :: {exec, term()} | {eval, term(), term()} | {call, term(), term(), term(), term()}.
-type handle_op() :: {getattr, term(), term()} | {call_method, term(), term(), term(), term()}
                   | {to_term, term()} | {buffer, term()}.

%% @doc `Op' in the caller's env on context `Ctx', waiting up to `Timeout'.
-spec run(pid(), timeout(), op()) -> term().
run(Ctx, Timeout, Op) ->
    py_local_env:with(Ctx, fun(Env) when is_reference(Env) -> py_call:submit_and_wait(Env, Timeout, nif_submit(Op));
                              (Env) -> py_isolated_call:request(Env, Timeout, Op)
                           end).

%% @doc `Op' on the object behind the handle it names, waiting up to
%% `Timeout'.
-spec on_handle(term(), timeout(), handle_op()) -> term().
on_handle(Handle, Timeout, Op) ->
    case py_isolated_call:handle_request(Handle, Timeout, Op) of
        not_isolated -> py_call:submit_and_wait(Handle, Timeout, nif_submit(Op));
        Result -> Result
    end.

%% @doc py:spawn_call's `{call, M, F, A, K}' in `Env': a call ref, or
%% `{error, Reason}' when refused before it was queued.
-spec spawn_call(term(), op()) -> term().
spawn_call(Env, {call, M, F, A, K}) when is_reference(Env) -> py_nif:spawn_call(Env, M, F, A, K);
spawn_call(Env, Op) -> py_isolated_call:spawn_call(Env, Op).

%% @doc py:cast's `{call, M, F, A, K}' in `Env'.
-spec cast(term(), op()) -> ok | {error, term()}.
cast(Env, {call, M, F, A, K}) when is_reference(Env) -> py_nif:cast(Env, M, F, A, K);
cast(Env, Op) -> py_isolated_call:cast(Env, Op).

%% @doc A stream (py:stream_start/4) of what `{call, M, F, A, K}' returns,
%% in `Env', to `Owner', with `Window' (0: none).
-spec stream_start(term(), pid(), non_neg_integer(), op()) -> {ok, reference()} | {error, term()}.
stream_start(Env, Owner, Window, {call, M, F, A, K}) when is_reference(Env) ->
    py_nif:stream_start(Env, Owner, Window, M, F, A, K);
stream_start(Env, Owner, Window, Op) ->
    py_isolated_stream:start(Env, Owner, Window, Op).

%% @doc What py:info() says of a context, by its registry row.
-spec context_info(term()) -> map().
context_info({py_isolated, _, _, _, _} = Ref) ->
    case py_isolated_call:info(Ref) of
        {ok, Info} -> Info;
        {error, Why} -> #{mode => isolated, running => false, error => Why}
    end;
context_info(Ref) ->
    py_nif:context_info(Ref).

%% An operation as the NIF queues it.
nif_submit({exec, Code}) -> fun(Env, Tag) -> py_nif:exec(Env, Tag, Code) end;
nif_submit({eval, Expr, Locals}) -> fun(Env, Tag) -> py_nif:eval(Env, Tag, Expr, Locals) end;
nif_submit({call, M, F, A, K}) -> fun(Env, Tag) -> py_nif:call(Env, Tag, M, F, A, K) end;
nif_submit({getattr, _, Name}) -> fun(H, Tag) -> py_nif:handle_getattr(H, Tag, Name) end;
nif_submit({call_method, _, Method, Args, Kwargs}) ->
    fun(H, Tag) -> py_nif:handle_call_method(H, Tag, Method, Args, Kwargs) end;
nif_submit({to_term, _}) -> fun(H, Tag) -> py_nif:handle_to_term(H, Tag) end;
nif_submit({buffer, _}) -> fun(H, Tag) -> py_nif:handle_buffer(H, Tag) end.
