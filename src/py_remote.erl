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

-export([start_link/0, call/2, spawn_call/2, await/3, proxies/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([proxy/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Runs `py:F(A...)' on `Ctx''s node in the caller's proxy there, and
%% returns what it returned.
-spec call(pid(), {atom(), list()}) -> term().
call(Ctx, {Function, Args}) ->
    Node = node(Ctx),
    case proxy_on(Node) of
        {ok, Proxy} ->
            Mon = monitor(process, Proxy),
            Tag = make_ref(),
            Proxy ! {py_remote_call, self(), Tag, Function, Args},
            receive
                {Tag, Result} ->
                    demonitor(Mon, [flush]),
                    Result;
                {'DOWN', Mon, process, Proxy, noconnection} ->
                    erase({?MODULE, Node}),
                    {error, {nodedown, Node}};
                {'DOWN', Mon, process, Proxy, noproc} ->
                    %% gone before the call (its node's application
                    %% restarted, say): ask for a new one
                    erase({?MODULE, Node}),
                    call(Ctx, {Function, Args});
                {'DOWN', Mon, process, Proxy, Why} ->
                    erase({?MODULE, Node}),
                    {error, {remote_proxy_down, Why}}
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc `py:spawn_call(Ctx, M, F, A, Kwargs)' on `Ctx''s node: the answer
%% comes here as `{py_response, Ref, Result}', as for a local one; await it
%% with `py:await/2'.
-spec spawn_call(pid(), list()) -> reference().
spawn_call(Ctx, Args) ->
    Ref = make_ref(),
    _ = case proxy_on(node(Ctx)) of
            {ok, Proxy} ->
                put({?MODULE, ref, Ref}, Proxy),
                Proxy ! {py_remote_spawn, self(), Ref, Args};
            {error, _} = Error ->
                %% refused before it left: await answers this
                put({?MODULE, ref, Ref}, {failed, Error})
        end,
    Ref.

%% @doc The answer of a remote spawn_call, or `{error, {nodedown, Node}}'
%% if its node is lost first; `undefined' if `Ref' is not one.
-spec await(reference(), timeout(), pid() | {failed, term()}) -> term().
await(Ref, _Timeout, {failed, Error}) ->
    erase({?MODULE, ref, Ref}),
    Error;
await(Ref, Timeout, Proxy) ->
    Mon = monitor(process, Proxy),
    receive
        {py_response, Ref, Result} ->
            demonitor(Mon, [flush]),
            erase({?MODULE, ref, Ref}),
            Result;
        {'DOWN', Mon, process, Proxy, Why} ->
            erase({?MODULE, ref, Ref}),
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
handle_call({proxy, Caller}, _From, Proxies) ->
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

%% Spawned: the caller's refs of the spawn_calls still running, by ours.
proxy_loop(Caller, Spawned) ->
    receive
        {py_remote_call, Caller, Tag, Function, Args} ->
            Result = case lists:member({Function, length(Args)}, [{exec, 3}, {eval, 4}, {call, 6}]) of
                         true -> apply(py, Function, Args);
                         false -> {error, {badarg, {remote_function, Function}}}
                     end,
            Caller ! {Tag, Result},
            proxy_loop(Caller, Spawned);
        {py_remote_spawn, Caller, CallerRef, [Ctx, Module, Function, Args, Kwargs]} ->
            Ours = py:spawn_call(Ctx, Module, Function, Args, Kwargs),
            proxy_loop(Caller, Spawned#{Ours => CallerRef});
        {py_response, Ours, Result} when is_map_key(Ours, Spawned) ->
            Caller ! {py_response, map_get(Ours, Spawned), Result},
            proxy_loop(Caller, maps:remove(Ours, Spawned))
    end.

watch(Caller, Proxy) ->
    CallerMon = monitor(process, Caller),
    ProxyMon = monitor(process, Proxy),
    receive
        {'DOWN', CallerMon, process, Caller, _} -> exit(Proxy, kill);
        {'DOWN', ProxyMon, process, Proxy, _} -> ok
    end.
