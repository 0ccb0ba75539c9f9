%% @doc Erlang functions that Python calls: the registry of
%% {@link py:register_function/2} and the process that runs the calls.
%%
%% Python's `erlang.call(Name, *Args)' (or `erlang.Name(*Args)') sends
%% `{'$py_callback', Id, Name, Args, DeferredMaps, Caller}' here. Each call runs in a
%% process of its own, so a slow function holds up nothing else and may call
%% back into Python, even the very context that is waiting for it (which keeps
%% serving its queue meanwhile). The answer goes back with
%% `py_nif:callback_reply/2'.
%%
%% Python gets exactly one answer to every call: the function's value or
%% exception from the runner; why the runner died (killed, or a reply the
%% NIF refused) from here, as the runners are linked to this process; and
%% should this process itself die, the NIF (which watches it) answers every
%% call it had not.
-module(py_callbacks).
-behaviour(gen_server).

-export([start_link/0, register/2, unregister/1]).
%% for isolated contexts, whose worker's calls py_isolated runs
-export([run/2, take_group_leader/1, is_registered/1, format/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(TABLE, ?MODULE).

-type target() :: fun((list()) -> term()) | {module(), atom()}.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Registers (or replaces) the function Python calls as `Name'.
-spec register(atom() | binary(), target()) -> ok | {error, term()}.
register(Name, Target) ->
    case name(Name) of
        {ok, Bin} -> call({register, Bin, Target});
        error -> {error, {badarg, name}}
    end.

-spec unregister(atom() | binary()) -> ok | {error, term()}.
unregister(Name) ->
    case name(Name) of
        {ok, Bin} -> call({unregister, Bin});
        error -> {error, {badarg, name}}
    end.

name(Name) when is_atom(Name) -> {ok, atom_to_binary(Name, utf8)};
name(Name) when is_binary(Name), Name =/= <<>> -> {ok, Name};
name(_) -> error.

call(Request) ->
    try
        gen_server:call(?MODULE, Request)
    catch
        exit:{noproc, _} -> {error, {not_started, erlang_python}}
    end.

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    %% runners are linked: their exit reasons come here, and they end with us
    process_flag(trap_exit, true),
    _ = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    %% A restart starts from an empty registry: Python must see that too.
    ok = py_nif:callback_names_reset(),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({register, Name, Target}, _From, State) ->
    ets:insert(?TABLE, {Name, Target}),
    {reply, py_nif:callback_name(Name, true), State};
handle_call({unregister, Name}, _From, State) ->
    ets:delete(?TABLE, Name),
    {reply, py_nif:callback_name(Name, false), State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
%% State: call id => runner pid, and runner pid => call id.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'$py_callback', Id, Name, Args, Deferred, Caller}, State) ->
    Pid = spawn_link(fun() -> run_call(Id, Name, Args, Deferred, Caller) end),
    {noreply, State#{Id => Pid, Pid => Id}};
handle_info({'$py_callback_cancel', Id}, State) ->
    %% Python gave up waiting (timeout, stop): the function need not go on.
    case State of
        #{Id := Pid} -> exit(Pid, kill);
        _ -> ok
    end,
    {noreply, State};
handle_info({'EXIT', Pid, Reason}, State) ->
    case maps:take(Pid, State) of
        {Id, Rest} ->
            %% Normally answered already (the reply then finds nobody
            %% waiting); otherwise, even after exit(self(), normal) in the
            %% function, Python hears why it died instead of waiting for ever.
            _ = py_nif:callback_reply(Id, {error, exit, Reason, format(Reason)}),
            {noreply, maps:remove(Id, Rest)};
        error ->
            {noreply, State}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
%% Runners go with us even when we stop normally (a normal exit signal
%% would not end them); the NIF answers their calls.
-spec terminate(term(), map()) -> ok.
terminate(_Reason, State) ->
    _ = [exit(Pid, kill) || Pid <- maps:keys(State), is_pid(Pid)],
    ok.

%% The body of the process running call Id. A reply the NIF refuses (a
%% result too large for Python, say: the NIF has told Python so) ends it
%% abnormally, so no way out leaves Python without an answer.
run_call(Id, Name, Args0, Deferred, Caller) ->
    ok = py_nif:callback_begin(Id),
    %% what the function prints shows where its caller's print() does
    %% (spec §13): at the group leader of the process whose call this is
    _ = take_group_leader(Caller),
    %% py_packages refuses steps from here: the context waiting on this
    %% call could only apply them after it returns.
    put(py_callback_id, Id),
    Result = case finish(Args0, Deferred) of
                 {ok, Args} -> run(Name, Args);
                 {error, Reason} -> {error, error, Reason, format(Reason)}
             end,
    case py_nif:callback_reply(Id, Result) of
        ok -> ok;
        nobody_waiting -> ok;
        {error, Why} -> exit({reply_failed, Why})
    end.

%% @doc Makes the group leader of `Caller' this process's own.
-spec take_group_leader(pid() | undefined) -> ok.
take_group_leader(Caller) when is_pid(Caller) ->
    case process_info(Caller, group_leader) of
        {group_leader, Leader} -> true = group_leader(Leader, self()), ok;
        undefined -> ok
    end;
take_group_leader(undefined) ->
    ok.

finish(Term, false) -> {ok, Term};
finish(Term, true) -> py_maps:finish({ok, Term}).

%% @doc Whether a function is registered as `Name' (a binary) now.
-spec is_registered(term()) -> boolean().
is_registered(Name) when is_binary(Name) ->
    try ets:member(?TABLE, Name)
    catch error:badarg -> false  % restarting
    end;
is_registered(_) ->
    false.

%% @doc Runs the function registered as `Name' on `Args'.
-spec run(binary(), list()) -> {ok, term()} | {error, error | exit | throw, term(), binary()}.
run(Name, Args) ->
    case ets:lookup(?TABLE, Name) of
        [{_, Target}] ->
            try apply_target(Target, Args) of
                Value -> {ok, Value}
            catch
                Class:Reason ->
                    {error, Class, Reason, format(Reason)}
            end;
        [] ->
            {error, error, undef, <<"no Erlang function is registered as ", Name/binary>>}
    end.

apply_target({Module, Function}, Args) -> Module:Function(Args);
apply_target(Fun, Args) -> Fun(Args).

%% @doc The reason as Python will read it: bounded, since a reason may
%% carry whole (or nested) error messages.
-spec format(term()) -> binary().
format(Reason) ->
    Text = iolist_to_binary(io_lib:format("~0P", [Reason, 20])),
    case byte_size(Text) > 2000 of
        true -> <<(binary:part(Text, 0, 2000))/binary, "...">>;
        false -> Text
    end.
