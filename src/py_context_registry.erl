%% @doc Where callers find a context's native handle without a message
%% round trip: a public ETS table from context pid (and pool slot) to the
%% handle. The registry owns the table and removes a context's rows when
%% the context process dies, however it dies.
-module(py_context_registry).
-behaviour(gen_server).

-export([start_link/0, register/3, unregister/0, lookup/1, pool_pid/1, contexts/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, ?MODULE).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Registers the calling context process. `PoolSlot' is its index in
%% the application's pool, or `undefined'.
-spec register(py_nif:ctx_ref(), py_context:mode(), pos_integer() | undefined) -> ok | {error, term()}.
register(CtxRef, Mode, PoolSlot) ->
    try
        gen_server:call(?MODULE, {register, self(), CtxRef, Mode, PoolSlot})
    catch
        exit:{noproc, _} -> {error, {not_started, erlang_python}}
    end.

%% @doc Removes the calling context process: from now on callers see it as
%% not running. (Rows of a process that dies without this go on its 'DOWN'.)
-spec unregister() -> ok.
unregister() ->
    try
        gen_server:call(?MODULE, {unregister, self()})
    catch
        exit:{noproc, _} -> ok
    end.

%% @doc The native handle of a live context.
-spec lookup(pid()) -> {ok, py_nif:ctx_ref()} | error.
lookup(Pid) ->
    try ets:lookup_element(?TABLE, Pid, 2) of
        Ref -> {ok, Ref}
    catch
        error:badarg -> error
    end.

%% @doc The pid of pool context `N'.
-spec pool_pid(pos_integer()) -> {ok, pid()} | error.
pool_pid(N) ->
    try ets:lookup_element(?TABLE, {pool, N}, 2) of
        Pid -> {ok, Pid}
    catch
        error:badarg -> error
    end.

%% @doc Every registered context as `{Pid, CtxRef, Mode, PoolSlot}'.
-spec contexts() -> [{pid(), py_nif:ctx_ref(), py_context:mode(), pos_integer() | undefined}].
contexts() ->
    try
        ets:select(?TABLE, [{{'$1', '$2', '$3', '$4'}, [{is_pid, '$1'}], [{{'$1', '$2', '$3', '$4'}}]}])
    catch
        error:badarg -> []  % the application is not running
    end.

%% @private
-spec init([]) -> {ok, map()}.
init([]) ->
    _ = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({register, Pid, CtxRef, Mode, PoolSlot}, _From, Monitors) ->
    MRef = erlang:monitor(process, Pid),
    ets:insert(?TABLE, {Pid, CtxRef, Mode, PoolSlot}),
    _ = PoolSlot =/= undefined andalso ets:insert(?TABLE, {{pool, PoolSlot}, Pid}),
    {reply, ok, Monitors#{MRef => {Pid, PoolSlot}}};
handle_call({unregister, Pid}, _From, Monitors) ->
    Mine = [MRef || {MRef, {P, _}} <- maps:to_list(Monitors), P =:= Pid],
    {reply, ok, lists:foldl(fun forget/2, Monitors, Mine)};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', MRef, process, _Pid, _Reason}, Monitors) ->
    {noreply, forget(MRef, Monitors)};
handle_info(_Msg, State) ->
    {noreply, State}.

forget(MRef, Monitors) ->
    case maps:take(MRef, Monitors) of
        {{Pid, PoolSlot}, Rest} ->
            erlang:demonitor(MRef, [flush]),
            ets:delete(?TABLE, Pid),
            %% A restarted pool context may already have taken the slot.
            _ = PoolSlot =/= undefined andalso ets:delete_object(?TABLE, {{pool, PoolSlot}, Pid}),
            Rest;
        error ->
            Monitors
    end.
