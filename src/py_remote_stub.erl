%% @doc On a caller's node, what its proxy on another node still owes it
%% (see {@link py_remote}): the answers of spawn_calls and the messages of
%% streams come through here and go on as the local ones would
%% (`{py_response, Ref, R}', `{py_stream, Ref, M}'). When the proxy goes
%% (its node lost, say), each of those gets its error in the same shape:
%% nobody waits for ever, and a gen_server taking them in `handle_info'
%% hears of it. One stub per caller and node; it ends with either.
-module(py_remote_stub).

-export([start/2, cancel/2]).
-export([init/2]).

-define(STREAMS, py_remote_streams).

-record(state, {
    caller :: pid(),
    proxy :: pid(),
    owed = #{} :: #{reference() => response | {stream, pid()}},
    owners = #{} :: #{reference() => reference()},   % owner monitor => stream, for owners other than the caller
    cancels = #{} :: #{reference() => [{pid(), reference()}]}  % streams being cancelled => who waits
}).

%% @doc A stub for `Caller''s requests through `Proxy'.
-spec start(pid(), pid()) -> pid().
start(Caller, Proxy) ->
    spawn(?MODULE, init, [Caller, Proxy]).

%% @doc Cancels the remote stream `Ref' and waits until nothing of it can
%% come any more: every message the proxy sent before is on its way first.
-spec cancel(pid(), reference()) -> ok.
cancel(Stub, Ref) ->
    Mon = monitor(process, Stub),
    Stub ! {cancel, Ref, self(), Mon},
    receive
        {Mon, ok} -> demonitor(Mon, [flush]), ok;
        {'DOWN', Mon, process, Stub, _} -> ok  % it answered for all it owed
    end.

%% @private
-spec init(pid(), pid()) -> ok.
init(Caller, Proxy) ->
    monitor(process, Caller),
    monitor(process, Proxy),
    loop(#state{caller = Caller, proxy = Proxy}).

loop(#state{caller = Caller, proxy = Proxy} = S) ->
    receive
        {py_remote_track, Ref} ->
            loop(S#state{owed = maps:put(Ref, response, S#state.owed)});
        {py_remote_response, {py_response, Ref, _} = Answer} ->
            Caller ! Answer,
            loop(S#state{owed = maps:remove(Ref, S#state.owed)});
        {py_remote_stream_started, Ref, Owner, Caller, Tag} ->
            true = ets:insert(?STREAMS, {Ref, self(), Proxy}),
            Owners = case Owner of
                         Caller -> S#state.owners;
                         _ -> maps:put(monitor(process, Owner), Ref, S#state.owners)
                     end,
            Caller ! {Tag, {ok, Ref}},
            loop(S#state{owed = maps:put(Ref, {stream, Owner}, S#state.owed), owners = Owners});
        {py_remote_stream, Ref, Message} ->
            case S#state.owed of
                #{Ref := {stream, Owner}} ->
                    Owner ! {py_stream, Ref, Message},
                    case Message of
                        {data, _} -> loop(S);
                        _ -> loop(ended(Ref, S))
                    end;
                _ ->
                    loop(S)  % cancelled
            end;
        {cancel, Ref, From, Tag} ->
            Proxy ! {py_remote_stream_cancel, Ref, self()},
            Waiting = maps:get(Ref, S#state.cancels, []),
            loop(S#state{cancels = maps:put(Ref, [{From, Tag} | Waiting], S#state.cancels)});
        {py_remote_stream_cancelled, Ref, _} ->
            {Waiting, Cancels} = take(Ref, S#state.cancels),
            _ = [From ! {Tag, ok} || {From, Tag} <- Waiting],
            loop(ended(Ref, S#state{cancels = Cancels}));
        {'DOWN', Mon, process, _, _} when is_map_key(Mon, S#state.owners) ->
            %% an owner other than the caller exited: its stream goes too
            Proxy ! {py_remote_stream_cancel, maps:get(Mon, S#state.owners), self()},
            loop(S#state{owners = maps:remove(Mon, S#state.owners)});
        {'DOWN', _, process, Proxy, Why} ->
            owe_nothing(py_remote:down_reason(Proxy, Why), S);
        {'DOWN', _, process, Caller, _} ->
            %% its proxy is killed with it; other owners hear why
            owe_nothing({remote_proxy_down, caller_exited}, S)
    end.

take(Key, Map) ->
    case maps:take(Key, Map) of
        {Value, Rest} -> {Value, Rest};
        error -> {[], Map}
    end.

%% Stream Ref has had its last message: it no longer routes.
ended(Ref, S) ->
    true = ets:delete(?STREAMS, Ref),
    Owners = maps:filter(fun(Mon, R) when R =:= Ref -> demonitor(Mon, [flush]), false;
                            (_Mon, _R) -> true
                         end, S#state.owners),
    S#state{owed = maps:remove(Ref, S#state.owed), owners = Owners}.

%% The proxy is gone: everything it owed is answered with Reason (streams
%% being cancelled just end: their canceller wants nothing more).
owe_nothing(Reason, #state{caller = Caller} = S) ->
    maps:foreach(fun(Ref, response) ->
                         Caller ! {py_response, Ref, {error, Reason}};
                    (Ref, {stream, Owner}) ->
                         true = ets:delete(?STREAMS, Ref),
                         is_map_key(Ref, S#state.cancels) orelse (Owner ! {py_stream, Ref, {error, Reason}})
                 end, S#state.owed),
    maps:foreach(fun(_Ref, Waiting) -> [From ! {Tag, ok} || {From, Tag} <- Waiting] end, S#state.cancels),
    ok.
