%% @doc Contexts on other nodes (spec §13), on plain Erlang distribution.
%%
%% A call naming a context on another node runs there in a proxy: one
%% process on that node per calling process, which makes the calls as the
%% caller would and so owns the caller's envs there. The proxy monitors
%% its caller, so those envs go when the caller exits or its node goes
%% down; the caller monitors the proxy, so a node that goes down mid-call
%% answers `{error, {nodedown, Node}}'. Each node's `py_remote' server
%% (in the application's tree) hands out the proxies.
-module(py_remote).
-behaviour(gen_server).

-export([start_link/0, call/2, spawn_call/2, await/2, proxies/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([proxy/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Runs `py:F(A...)' on `Ctx''s node in the caller's proxy there, and
%% returns what it returned.
-spec call(pid(), {atom(), list()}) -> term().
call(Ctx, Request) ->
    call(Ctx, Request, retry).

call(Ctx, {Function, Args} = Request, Retry) ->
    Node = node(Ctx),
    case proxy_on(Node) of
        {ok, Proxy} ->
            Mon = monitor(process, Proxy),
            Tag = make_ref(),
            %% the caller's group leader: Python's print output there
            %% comes back to it (spec §13)
            Proxy ! {py_remote_call, self(), Tag, group_leader(), Function, Args},
            receive
                {Tag, Result} ->
                    demonitor(Mon, [flush]),
                    Result;
                {'DOWN', Mon, process, Proxy, Why} ->
                    forget(Proxy),
                    case Why of
                        noconnection -> {error, {nodedown, Node}};
                        %% gone before the call (its node's application
                        %% restarted, say): once more, with a new one
                        noproc when Retry =:= retry -> call(Ctx, Request, no_retry);
                        _ -> {error, {remote_proxy_down, Why}}
                    end
            end;
        {error, _} = Error ->
            Error
    end.

%% The cached proxy is gone: the next call asks for a new one.
forget(Proxy) ->
    Key = {?MODULE, node(Proxy)},
    case get(Key) of
        Proxy -> erase(Key);
        _ -> ok
    end.

%% @doc `py:spawn_call(Ctx, M, F, A, Kwargs)' on `Ctx''s node. The Ref is
%% the one made there, so it names its node; its answer comes here as
%% `{py_response, Ref, Result}', forwarded by the proxy.
-spec spawn_call(pid(), list()) -> reference().
spawn_call(Ctx, Args) ->
    case call(Ctx, {spawn_call, Args}) of
        Ref when is_reference(Ref) -> Ref;
        {error, Reason} -> py_nif:async_failed(Reason)
    end.

%% @doc The answer of a remote spawn_call (a Ref from another node), or
%% `{error, {nodedown, Node}}' if its node is lost first.
-spec await(reference(), timeout()) -> term().
await(Ref, Timeout) ->
    case get({?MODULE, node(Ref)}) of
        undefined ->
            {error, not_owner};  % this process has no calls there
        Proxy ->
            Mon = monitor(process, Proxy),
            receive
                {py_response, Ref, Result} ->
                    demonitor(Mon, [flush]),
                    Result;
                {'DOWN', Mon, process, Proxy, Why} ->
                    forget(Proxy),
                    %% an answer sent just before the proxy went is still good
                    receive
                        {py_response, Ref, Result} -> Result
                    after 0 ->
                        case Why of
                            noconnection -> {error, {nodedown, node(Proxy)}};
                            _ -> {error, {remote_proxy_down, Why}}
                        end
                    end
            after Timeout ->
                demonitor(Mon, [flush]),
                {error, timeout}
            end
    end.

%% @doc How many callers from other nodes have a proxy here.
-spec proxies() -> non_neg_integer().
proxies() ->
    gen_server:call(?MODULE, count).

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
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({proxy, Caller}, _From, Proxies) when is_pid(Caller) ->
    case Proxies of
        #{Caller := Proxy} ->
            {reply, {ok, Proxy}, Proxies};
        _ ->
            Proxy = spawn_link(?MODULE, proxy, [Caller]),
            {reply, {ok, Proxy}, Proxies#{Caller => Proxy, Proxy => Caller}}
    end;
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
handle_info({'EXIT', Proxy, _}, Proxies) ->
    case Proxies of
        #{Proxy := Caller} -> {noreply, maps:without([Proxy, Caller], Proxies)};
        _ -> {noreply, Proxies}
    end;
handle_info(_Msg, Proxies) ->
    {noreply, Proxies}.

%% ---------------------------------------------------------------------------

%% @private
%% A caller's stand-in on this node: its envs here are the proxy's, and
%% end with it. A watcher kills it when the caller goes (exits, or its
%% node is lost), even in the middle of a call.
-spec proxy(pid()) -> no_return().
proxy(Caller) ->
    Proxy = self(),
    spawn(fun() -> watch(Caller, Proxy) end),
    proxy_loop(Caller).

proxy_loop(Caller) ->
    proxy_loop(Caller, #{}).

%% Spawned: the Refs of the caller's spawn_calls still running here.
proxy_loop(Caller, Spawned) ->
    receive
        {py_remote_call, Caller, Tag, _Leader, spawn_call, [Ctx, Module, Function, Args, Kwargs]} ->
            Ref = py:spawn_call(Ctx, Module, Function, Args, Kwargs),
            Caller ! {Tag, Ref},
            proxy_loop(Caller, Spawned#{Ref => true});
        {py_remote_call, Caller, Tag, Leader, Function, Args} ->
            group_leader(Leader, self()),
            Result = case lists:member({Function, length(Args)}, [{exec, 3}, {eval, 4}, {call, 6}]) of
                         true -> apply(py, Function, Args);
                         false -> {error, {badarg, {remote_function, Function}}}
                     end,
            Caller ! {Tag, Result},
            proxy_loop(Caller, Spawned);
        {py_response, Ref, _} = Answer when is_map_key(Ref, Spawned) ->
            Caller ! Answer,
            proxy_loop(Caller, maps:remove(Ref, Spawned))
    end.

watch(Caller, Proxy) ->
    CallerMon = monitor(process, Caller),
    ProxyMon = monitor(process, Proxy),
    receive
        {'DOWN', CallerMon, process, Caller, _} -> exit(Proxy, kill);
        {'DOWN', ProxyMon, process, Proxy, _} -> ok
    end.
