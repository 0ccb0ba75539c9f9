%% @doc Contexts on other nodes (spec §13), on plain Erlang distribution.
%%
%% A call naming a context on another node runs there in a proxy
%% ({@link py_remote_proxy}): one process on that node per calling process,
%% which makes the calls as the caller would and so owns the caller's envs
%% there (implicit ones, and the explicit ones it creates). The proxy goes
%% when the caller exits or its node goes down, and its envs with it; the
%% caller monitors the proxy, so a node lost mid-call answers
%% `{error, {nodedown, Node}}'.
%%
%% Answers that come later (spawn_call, streams) come through a stub on
%% the caller's node ({@link py_remote_stub}), which knows what is still
%% owed: when the proxy's node is lost, each of those gets its error as the
%% message it was waiting for, so a gen_server taking them in `handle_info'
%% hears of it too.
%%
%% Each node's `py_remote' server (in the application's tree) hands out the
%% proxies, and owns the table of the remote streams running on this node
%% (their proxies, linked to it, go with it).
-module(py_remote).
-behaviour(gen_server).

-export([start_link/0, call/2, call_on/2, spawn_call/2, await/2, stream_start/2, stream_ack/2, stream_cancel/1,
         stream_route/1, here/3, down_reason/2, on_node/3, proxies/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(STREAMS, py_remote_streams).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Runs `Module:F(A...)' (`py', `py_context' or `py_nif', see
%% {@link py_remote_proxy}) on `Ctx''s node in the caller's proxy there,
%% and returns what it returned.
-spec call(pid(), {atom(), list()}) -> term().
call(Ctx, Request) ->
    call_on(node(Ctx), Request).

%% @doc As {@link call/2}, on `Node'.
-spec call_on(node(), {atom(), list()}) -> term().
call_on(Node, Request) ->
    call_on(Node, Request, retry).

call_on(Node, Request, Retry) ->
    through_proxy(Node, fun(_Proxy) -> Request end, Retry).

%% Make(Proxy) is the request for the caller's proxy on Node.
through_proxy(Node, Make, Retry) ->
    case proxy_on(Node) of
        {ok, Proxy} ->
            case call_proxy(Proxy, Make(Proxy)) of
                %% gone before the call (its node's application restarted,
                %% say): once more, with a new one
                {proxy_down, noproc} when Retry =:= retry -> through_proxy(Node, Make, no_retry);
                {proxy_down, Why} -> {error, down_reason(Proxy, Why)};
                {ok, Result} -> Result
            end;
        {error, _} = Error ->
            Error
    end.

call_proxy(Proxy, {Function, Args}) ->
    Mon = monitor(process, Proxy),
    Tag = make_ref(),
    %% the caller's group leader: Python's print output there comes back
    %% to it (spec §13)
    Proxy ! {py_remote_call, self(), Tag, group_leader(), Function, Args},
    receive
        {Tag, Result} ->
            demonitor(Mon, [flush]),
            {ok, Result};
        {'DOWN', Mon, process, Proxy, Why} ->
            forget(Proxy),
            {proxy_down, Why}
    end.

%% @private Why the calls through a proxy that went down fail.
-spec down_reason(pid(), term()) -> term().
down_reason(Proxy, noconnection) -> {nodedown, node(Proxy)};
down_reason(_Proxy, Why) -> {remote_proxy_down, Why}.

%% The cached proxy is gone: the next call asks for a new one.
forget(Proxy) ->
    Key = {?MODULE, node(Proxy)},
    case get(Key) of
        Proxy -> erase(Key);
        _ -> ok
    end.

%% @doc `py:spawn_call(Ctx, M, F, A, Kwargs)' on `Ctx''s node. The Ref is
%% the one made there, so it names its node; its answer comes here as
%% `{py_response, Ref, Result}' (`{error, {nodedown, Node}}' if that node
%% is lost first).
-spec spawn_call(pid(), list()) -> reference().
spawn_call(Ctx, Args) ->
    case async(Ctx, spawn_call, Args) of
        Ref when is_reference(Ref) -> Ref;
        {error, Reason} -> py_nif:async_failed(Reason)
    end.

%% @doc The answer of a remote spawn_call (a Ref from another node).
-spec await(reference(), timeout()) -> term().
await(Ref, Timeout) ->
    case get({py_remote_stub, node(Ref)}) of
        undefined ->
            {error, not_owner};  % this process has no calls there
        {Stub, _Proxy} ->
            %% the stub answers everything it was told of, even on
            %% nodedown; watched only in case it was killed
            Mon = monitor(process, Stub),
            receive
                {py_response, Ref, Result} ->
                    demonitor(Mon, [flush]),
                    keep_traceback(Stub, Ref, Result);
                {'DOWN', Mon, process, Stub, Why} ->
                    receive
                        {py_response, Ref, Result} -> Result
                    after 0 -> {error, {remote_proxy_down, Why}}
                    end
            after Timeout ->
                demonitor(Mon, [flush]),
                {error, timeout}
            end
    end.

%% A Python exception's traceback, for py:last_traceback/0, as a local
%% await keeps it.
keep_traceback(Stub, Ref, {error, {_, _}} = Result) ->
    case py_remote_stub:traceback(Stub, Ref) of
        Traceback when is_binary(Traceback) -> put(py_last_traceback, Traceback);
        undefined -> ok
    end,
    Result;
keep_traceback(_Stub, _Ref, Result) ->
    Result.

%% @doc `py:stream_start(M, F, A, Opts)' with `ctx' on another node. The
%% owner gets the stream's messages through the caller's stub; the Ref is
%% made on the context's node, whose `py_remote' routes acks and cancels.
-spec stream_start(pid(), list()) -> {ok, reference()} | {error, term()}.
stream_start(Ctx, Args) ->
    async(Ctx, stream_start, Args).

%% @doc Acknowledges items of a remote stream (see {@link py:stream_ack/2}),
%% from any process on any node: the stream's node passes it on.
-spec stream_ack(reference(), pos_integer()) -> ok | {error, term()}.
stream_ack(Ref, Count) when is_integer(Count), Count > 0 ->
    case node(Ref) =:= node() of
        true -> ack_here(Ref, Count);
        false -> {?MODULE, node(Ref)} ! {stream_ack, Ref, Count}, ok
    end;
stream_ack(_Ref, _Count) ->
    {error, {badarg, count}}.

ack_here(Ref, Count) ->
    case stream_route(Ref) of
        {ok, Res, _Proxy, _Stub} -> _ = py_nif:stream_ack(Res, Count), ok;
        ended -> ok  % acknowledging a stream that has ended is harmless
    end.

%% @doc Cancels a remote stream: once this returns, no message of it
%% comes to the canceller (see {@link py:stream_cancel/1}). The stub that
%% passes the stream's messages on does it, so nothing is on its way.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) ->
    Node = node(Ref),
    %% the caller's own stream: its stub is known here, even if Node is lost
    Mine = case get({py_remote_stub, Node}) of
               {Stub, _} -> py_remote_stub:cancel(Stub, Ref);
               undefined -> not_mine
           end,
    case Mine of
        ok ->
            ok;
        _NotMineOrGone ->
            Route = case Node =:= node() of
                        true -> stream_route(Ref);
                        false -> on_node(Node, ?MODULE, {stream_route, [Ref]})
                    end,
            case Route of
                {ok, _Res, _Proxy, Other} -> _ = py_remote_stub:cancel(Other, Ref), ok;
                _ -> ok  % ended, or gone with its node
            end
    end.

%% @doc For a Ref of this node the NIF does not know: `Fun()' if it names
%% a remote stream running here (its owner is here, its caller elsewhere),
%% else `Error'. Such a Ref is known until its stream's last message has
%% been passed on.
-spec here(reference(), Error, fun(() -> Result)) -> Error | Result.
here(Ref, Error, Fun) ->
    case stream_route(Ref) of
        {ok, _Res, _Proxy, _Stub} -> Fun();
        ended -> Error
    end.

%% @doc Where remote stream `Ref' of this node runs: the NIF's stream, the
%% proxy that owns it, the stub that passes its messages on; `ended' once
%% its last message has been passed on (or it was cancelled).
-spec stream_route(reference()) -> {ok, reference(), pid(), pid()} | ended.
stream_route(Ref) ->
    try ets:lookup(?STREAMS, Ref) of
        [{Ref, Res, Proxy, Stub, _Forwarder, _Owner}] -> {ok, Res, Proxy, Stub};
        [] -> ended
    catch
        error:badarg -> ended  % this node's py_remote is not running: nor is any proxy
    end.

%% @doc `Module:Function(Args...)' run on `Node' directly (calls that need
%% no env there, such as `py:interrupt/1'); `{error, {nodedown, Node}}' and
%% friends when it cannot be.
-spec on_node(node(), module(), {atom(), list()}) -> term().
on_node(Node, Module, {Function, Args}) ->
    try
        erpc:call(Node, Module, Function, Args, infinity)
    catch
        error:{erpc, noconnection} -> {error, {nodedown, Node}};
        error:{exception, undef, _} -> {error, {not_started, {erlang_python, Node}}};
        Class:Why -> {error, {remote, Node, {Class, Why}}}
    end.

%% @doc How many callers from other nodes have a proxy here.
-spec proxies() -> non_neg_integer().
proxies() ->
    gen_server:call(?MODULE, count).

%% An async request: the proxy tells the stub what it owes before the
%% caller learns its Ref, so the stub can always answer for it. The stub
%% belongs to one proxy: a new proxy gets a new stub.
async(Ctx, Kind, Args) ->
    Node = node(Ctx),
    through_proxy(Node, fun(Proxy) -> {Kind, [stub_for(Node, Proxy) | Args]} end, retry).

stub_for(Node, Proxy) ->
    case get({py_remote_stub, Node}) of
        {Stub, Proxy} ->
            case is_process_alive(Stub) of
                true -> Stub;
                false -> new_stub(Node, Proxy)
            end;
        _ ->
            new_stub(Node, Proxy)
    end.

new_stub(Node, Proxy) ->
    Stub = py_remote_stub:start(self(), Proxy),
    put({py_remote_stub, Node}, {Stub, Proxy}),
    Stub.

%% The caller's proxy on Node, asked of Node's py_remote once and then
%% kept in the caller's process dictionary.
proxy_on(Node) ->
    case get({?MODULE, Node}) of
        Proxy when is_pid(Proxy) ->
            {ok, Proxy};
        undefined ->
            try erpc:call(Node, gen_server, call, [?MODULE, {proxy, self()}, infinity], infinity) of
                {ok, Proxy} ->
                    put({?MODULE, Node}, Proxy),
                    {ok, Proxy}
            catch
                error:{erpc, noconnection} -> {error, {nodedown, Node}};
                exit:{exception, {noproc, _}} -> {error, {not_started, {erlang_python, Node}}};
                exit:{{noproc, _}, _} -> {error, {not_started, {erlang_python, Node}}};
                error:{exception, undef, _} -> {error, {not_started, {erlang_python, Node}}};
                Class:Why -> {error, {remote, Node, {Class, Why}}}
            end
    end.

%% ---------------------------------------------------------------------------

%% @private
-spec init([]) -> {ok, #{pid() => pid()}}.
init([]) ->
    process_flag(trap_exit, true),
    %% streams run here for callers elsewhere:
    %% {Ref, NIF stream, Proxy, Stub, Forwarder, Owner}
    _ = ets:new(?STREAMS, [named_table, public, set]),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({proxy, Caller}, _From, Proxies) when is_pid(Caller) ->
    case Proxies of
        #{Caller := Proxy} ->
            {reply, {ok, Proxy}, Proxies};
        _ ->
            Proxy = py_remote_proxy:start_link(Caller),
            {reply, {ok, Proxy}, Proxies#{Caller => Proxy, Proxy => Caller}}
    end;
handle_call({nif_cancel, Ref}, _From, Proxies) ->
    %% a stub cancels: the NIF sends nothing more, the proxy forgets it
    case ets:lookup(?STREAMS, Ref) of
        [{Ref, Res, _Proxy, _Stub, Forwarder, _Owner}] ->
            _ = py_nif:stream_cancel(Res),
            true = ets:delete(?STREAMS, Ref),
            Forwarder ! {py_remote_forget, Res},
            ok;
        [] ->
            ok
    end,
    {reply, ok, Proxies};
handle_call(count, _From, Proxies) ->
    {reply, map_size(Proxies) div 2, Proxies};
handle_call(_Request, _From, Proxies) ->
    {reply, {error, unknown_call}, Proxies}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, Proxies) ->
    {noreply, Proxies}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({stream_ack, Ref, Count}, Proxies) ->
    _ = ack_here(Ref, Count),
    {noreply, Proxies};
handle_info({forget_stream, Ref}, Proxies) ->
    %% its stub has passed its last message on
    true = ets:delete(?STREAMS, Ref),
    {noreply, Proxies};
handle_info({'EXIT', Proxy, _}, Proxies) ->
    %% its streams were closed with it (its forwarder owned them)
    owners_hear_of_nodedown(ets:match_object(?STREAMS, {'_', '_', Proxy, '_', '_', '_'})),
    true = ets:match_delete(?STREAMS, {'_', '_', Proxy, '_', '_', '_'}),
    case Proxies of
        #{Proxy := Caller} -> {noreply, maps:without([Proxy, Caller], Proxies)};
        _ -> {noreply, Proxies}
    end;
handle_info(_Msg, Proxies) ->
    {noreply, Proxies}.

%% A proxy is gone because its caller's node was lost: the stub there
%% cannot tell owners elsewhere that their streams ended, so this node
%% does. (Owners on the caller's node hear it from the stub, if anyone.)
owners_hear_of_nodedown(Routes) ->
    _ = [Owner ! {py_stream, Ours, {error, {nodedown, node(Stub)}}}
         || {Ours, _Res, _Proxy, Stub, _Forwarder, Owner} <- Routes,
            node(Owner) =/= node(Stub), not lists:member(node(Stub), nodes())],
    ok.
