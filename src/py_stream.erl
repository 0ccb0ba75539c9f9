%% @private
%% @doc Streams (spec §9) behind {@link py:stream/5}, {@link py:stream_start/4},
%% {@link py:stream_ack/2} and {@link py:stream_cancel/1}: options, the
%% collecting loop, and the way to a stream on another node (py_remote).
-module(py_stream).

-export([start/5, options/1, collect/2, ack/2, cancel/1]).

%% @doc Starts a stream with the options of {@link py:stream_start/4};
%% `OnDefault(Fun)' runs `Fun(Ctx)' on the caller's default context.
-spec start(py:module_name(), py:function_name(), list(), term(), fun((fun((pid()) -> R)) -> R)) ->
          {ok, reference()} | {error, term()}.
start(Module, Function, Args, Opts, OnDefault) when is_map(Opts) ->
    case options(Opts) of
        {ok, {undefined, Owner, Window, Kwargs}} ->
            OnDefault(fun(Ctx) -> start_here(Ctx, Owner, Window, Module, Function, Args, Kwargs) end);
        {ok, {Ctx, _Owner, _Window, _Kwargs}} when node(Ctx) =/= node() ->
            %% a context on another node (spec §13): through this process's proxy
            py_remote:stream_start(Ctx, [Ctx, Module, Function, Args, maps:remove(ctx, Opts)]);
        {ok, {Ctx, Owner, Window, Kwargs}} ->
            start_here(Ctx, Owner, Window, Module, Function, Args, Kwargs);
        {error, _} = Error ->
            Error
    end;
start(_Module, _Function, _Args, _Opts, _OnDefault) ->
    {error, {badarg, options}}.

start_here(Ctx, Owner, Window, Module, Function, Args, Kwargs) ->
    py_local_env:with(Ctx, fun(Env) -> py_ops:stream_start(Env, Owner, Window, {call, Module, Function, Args, Kwargs}) end).

%% @doc The options of {@link py:stream_start/4}, checked: `{Ctx or
%% undefined, Owner, Window (0: none), Kwargs}'.
-spec options(map()) -> {ok, {pid() | undefined, pid(), non_neg_integer(), map()}} | {error, term()}.
options(Opts) ->
    case maps:keys(maps:without([ctx, kwargs, owner, window], Opts)) of
        [] ->
            Ctx = maps:get(ctx, Opts, undefined),
            Owner = maps:get(owner, Opts, self()),
            Window = maps:get(window, Opts, none),
            Kwargs = maps:get(kwargs, Opts, #{}),
            if
                Ctx =/= undefined, not is_pid(Ctx) -> {error, {badarg, ctx}};
                not is_pid(Owner) -> {error, {badarg, owner}};
                not is_map(Kwargs) -> {error, {badarg, kwargs}};
                Window =:= none -> {ok, {Ctx, Owner, 0, Kwargs}};  % the NIF's "no limit"
                not is_integer(Window); Window < 1 -> {error, {badarg, window}};
                true -> {ok, {Ctx, Owner, Window, Kwargs}}
            end;
        [Unknown | _] ->
            {error, {badarg, {option, Unknown}}}
    end.

%% @doc Everything a started stream yields, `Timeout' for all of it.
-spec collect({ok, reference()} | {error, term()}, timeout()) -> {ok, list()} | {error, term()}.
collect({ok, Ref}, Timeout) ->
    Deadline = case Timeout of
                   infinity -> infinity;
                   _ -> erlang:monotonic_time(millisecond) + Timeout
               end,
    items(Ref, Deadline, []);
collect({error, _} = Error, _Timeout) ->
    Error.

items(Ref, Deadline, Acc) ->
    Left = case Deadline of
               infinity -> infinity;
               _ -> max(0, Deadline - erlang:monotonic_time(millisecond))
           end,
    receive
        {py_stream, Ref, {data, Item}} -> items(Ref, Deadline, [Item | Acc]);
        {py_stream, Ref, done} -> {ok, lists:reverse(Acc)};
        {py_stream, Ref, {error, _} = Error} ->
            ok = cancel(Ref),  % it has ended; nothing may follow in the mailbox
            Error
    after Left ->
        ok = cancel(Ref),
        {error, timeout}
    end.

%% @doc As {@link py:stream_ack/2}.
-spec ack(term(), term()) -> ok | {error, term()}.
ack(Ref, Count) when is_reference(Ref), node(Ref) =/= node() ->
    py_remote:stream_ack(Ref, Count);
ack(Ref, Count) ->
    case py_isolated_stream:ack(Ref, Count) of
        not_isolated -> ack_here(Ref, Count);
        Result -> Result
    end.

ack_here(Ref, Count) ->
    case py_nif:stream_ack(Ref, Count) of
        {error, {badarg, ref}} = Error when is_reference(Ref) ->
            %% a stream run here for a caller on another node, owned here
            py_remote:here(Ref, Error, fun() -> py_remote:stream_ack(Ref, Count) end);
        Result ->
            Result
    end.

%% @doc As {@link py:stream_cancel/1}.
-spec cancel(term()) -> ok | {error, term()}.
cancel(Ref) when is_reference(Ref), node(Ref) =/= node() ->
    ok = py_remote:stream_cancel(Ref),
    flush(Ref);
cancel(Ref) ->
    case py_isolated_stream:cancel(Ref) of
        not_isolated -> cancel_here(Ref);
        ok -> flush(Ref)
    end.

cancel_here(Ref) ->
    case py_nif:stream_cancel(Ref) of
        ok ->
            flush(Ref);
        {error, {badarg, ref}} = Error when is_reference(Ref) ->
            py_remote:here(Ref, Error, fun() -> ok = py_remote:stream_cancel(Ref), flush(Ref) end);
        {error, _} = Error ->
            Error
    end.

flush(Ref) ->
    receive
        {py_stream, Ref, _} -> flush(Ref)
    after 0 ->
        ok
    end.
