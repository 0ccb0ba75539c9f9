%% @doc On a caller's node, what its proxy on another node still owes it
%% (see {@link py_remote}): the answers of spawn_calls and the messages of
%% streams come through here and go on as the local ones would
%% (`{py_response, Ref, R}', `{py_stream, Ref, M}'). When the proxy goes
%% (its node lost, say), each of those gets its error in the same shape:
%% nobody waits for ever, and a gen_server taking them in `handle_info'
%% hears of it. One stub per caller and proxy; it ends with either.
%%
%% Cancelling a stream happens here too: once the stub has stopped passing
%% the stream on, nothing of it can reach its owner, whatever is still on
%% its way from the other node.
-module(py_remote_stub).

-export([start/2, cancel/2, traceback/2]).
-export([init/2]).

-record(state, {
    caller :: pid(),
    proxy :: pid(),
    owed = #{} :: #{reference() => response | {stream, pid()}},
    owners = #{} :: #{reference() => reference()},  % owner monitor => stream, for owners other than the caller
    traceback = none :: none | {reference(), binary() | undefined}  % of the last answer passed on
}).

%% @doc A stub for `Caller''s requests through `Proxy'.
-spec start(pid(), pid()) -> pid().
start(Caller, Proxy) ->
    spawn(?MODULE, init, [Caller, Proxy]).

%% @doc Cancels the remote stream `Ref' if this stub passes it on: `ok'
%% once nothing of it can come any more (all it had passed on before is in
%% the owner's mailbox), `not_mine' if it is not this stub's, `gone' if the
%% stub has ended (it passes nothing on any more, but the stream may run
%% on through another).
-spec cancel(pid(), reference()) -> ok | not_mine | gone.
cancel(Stub, Ref) ->
    Mon = monitor(process, Stub),
    Stub ! {cancel, Ref, self(), Mon},
    receive
        {Mon, Answer} -> demonitor(Mon, [flush]), Answer;
        {'DOWN', Mon, process, Stub, _} -> gone
    end.

%% @doc The traceback of spawn_call `Ref''s Python exception, if its was
%% the last answer this stub passed on; `undefined' otherwise.
-spec traceback(pid(), reference()) -> binary() | undefined.
traceback(Stub, Ref) ->
    Mon = monitor(process, Stub),
    Stub ! {traceback, Ref, self(), Mon},
    receive
        {Mon, Traceback} -> demonitor(Mon, [flush]), Traceback;
        {'DOWN', Mon, process, Stub, _} -> undefined
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
        {py_remote_response, {py_response, Ref, _} = Answer, Traceback} ->
            Caller ! Answer,
            %% kept until the next one: py:await takes it
            loop(S#state{owed = maps:remove(Ref, S#state.owed), traceback = {Ref, Traceback}});
        {traceback, Ref, From, Tag} ->
            From ! {Tag, case S#state.traceback of
                             {Ref, Traceback} -> Traceback;
                             _ -> undefined
                         end},
            loop(S);
        {py_remote_stream_started, Ref, Owner} ->
            Owners = case Owner of
                         Caller -> S#state.owners;
                         _ -> maps:put(monitor(process, Owner), Ref, S#state.owners)
                     end,
            loop(S#state{owed = maps:put(Ref, {stream, Owner}, S#state.owed), owners = Owners});
        {py_remote_stream, Ref, Message} ->
            case S#state.owed of
                #{Ref := {stream, Owner}} ->
                    Owner ! {py_stream, Ref, Message},
                    case Message of
                        {data, _} ->
                            loop(S);
                        _ ->
                            %% its last: the stream's node may forget its route
                            {py_remote, node(Proxy)} ! {forget_stream, Ref},
                            loop(stop_owing(Ref, S))
                    end;
                _ ->
                    loop(S)  % cancelled: what was on its way stops here
            end;
        {cancel, Ref, From, Tag} ->
            case S#state.owed of
                #{Ref := {stream, _}} ->
                    S1 = stop_owing(Ref, S),
                    nif_cancel(Proxy, Ref),
                    From ! {Tag, ok},
                    loop(S1);
                _ ->
                    From ! {Tag, not_mine},
                    loop(S)
            end;
        {'DOWN', Mon, process, _, _} when is_map_key(Mon, S#state.owners) ->
            %% an owner other than the caller exited: its stream goes too
            Ref = maps:get(Mon, S#state.owners),
            S1 = stop_owing(Ref, S),
            nif_cancel(Proxy, Ref),
            loop(S1);
        {'DOWN', _, process, Proxy, Why} ->
            owe_nothing(py_remote:down_reason(Proxy, Why), S);
        {'DOWN', _, process, Caller, _} ->
            %% its proxy is killed with it; other owners hear why
            owe_nothing({remote_proxy_down, caller_exited}, S)
    end.

%% The stream's node stops it: the NIF sends nothing more. A node already
%% lost has stopped it too.
nif_cancel(Proxy, Ref) ->
    try gen_server:call({py_remote, node(Proxy)}, {nif_cancel, Ref}, infinity)
    catch exit:_ -> ok
    end.

%% Nothing more of stream Ref goes on from here.
stop_owing(Ref, S) ->
    Owners = maps:filter(fun(Mon, R) when R =:= Ref -> demonitor(Mon, [flush]), false;
                            (_Mon, _R) -> true
                         end, S#state.owners),
    S#state{owed = maps:remove(Ref, S#state.owed), owners = Owners}.

%% The proxy is gone: everything it owed is answered with Reason.
owe_nothing(Reason, #state{caller = Caller} = S) ->
    maps:foreach(fun(Ref, response) -> Caller ! {py_response, Ref, {error, Reason}};
                    (Ref, {stream, Owner}) -> Owner ! {py_stream, Ref, {error, Reason}}
                 end, S#state.owed).
