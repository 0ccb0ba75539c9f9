%% @doc Erlang functions that Python calls: the registry of
%% {@link py:register_function/2} and the process that runs the calls.
%%
%% Python's `erlang.call(Name, *Args)' (or `erlang.Name(*Args)') sends
%% `{'$py_callback', Id, Name, Args, DeferredMaps}' here. Each call runs in a
%% process of its own, so a slow function holds up nothing else and may call
%% back into Python, even the very context that is waiting for it (which keeps
%% serving its queue meanwhile). The answer goes back with
%% `py_nif:callback_reply/2'.
-module(py_callbacks).
-behaviour(gen_server).

-export([start_link/0, register/2, unregister/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

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
    _ = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
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
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'$py_callback', Id, Name, Args, Deferred}, State) ->
    _ = spawn(fun() -> py_nif:callback_reply(Id, run(Name, finish(Args, Deferred))) end),
    {noreply, State};
handle_info({'$py_send', To, Term}, State) ->
    %% a remote pid, or a term with maps only a scheduler may build
    To ! finish(Term, true),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

finish(Term, false) -> Term;
finish(Term, true) -> element(2, py_maps:finish({ok, Term})).

run(Name, Args) ->
    case ets:lookup(?TABLE, Name) of
        [{_, Target}] ->
            try apply_target(Target, Args) of
                Value -> {ok, Value}
            catch
                Class:Reason ->
                    {error, Class, Reason, iolist_to_binary(io_lib:format("~0p", [Reason]))}
            end;
        [] ->
            {error, error, undef, <<"no Erlang function is registered as ", Name/binary>>}
    end.

apply_target({Module, Function}, Args) -> Module:Function(Args);
apply_target(Fun, Args) -> Fun(Args).
