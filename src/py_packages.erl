%% @doc What every interpreter gets (spec §12): `sys.path' entries
%% ({@link add_path/1}), imported modules ({@link import/1}), preload code
%% ({@link preload/1}) and the active venv ({@link activate_venv/1}).
%%
%% This server keeps them as numbered steps. A step goes at once to every
%% running context and to the event loop, each applying it on its own
%% thread in queue order, and to every context started later before anyone
%% can call it (see {@link py_packages_target}). Worker contexts share the
%% main interpreter: there each step runs once, by whichever comes first,
%% and its `sys.path' changes in one atomic update. `py' exports the same
%% functions; use those.
%%
%% A step that fails anywhere is dropped (the interpreters where it ran keep
%% its effect) and the error names each failing context with its Python
%% exception: `{error, {preload_failed, [{CtxPid, {Type, Message}}]}}'.
%% A step that fails in a context being started fails that start. They
%% cannot be called from an Erlang function Python called (`erlang.call'):
%% the calling context could only apply the step once that call returned.
-module(py_packages).
-behaviour(gen_server).

-export([start_link/0, join/1, join_loop/1,
         add_path/1, import/1, preload/1, activate_venv/1, deactivate_venv/0, venv_info/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([failures/0]).

%% Each failing context and what Python raised there.
-type failures() :: [{pid(), term()}].
-type kind() :: add_path | import | preload | venv | no_venv.
%% {Seq, Kind, what Python gets, what an error names}
-type step() :: {pos_integer(), kind(), term(), term()}.

%% A context (or the event loop) kept up to date, by its owner's pid.
-record(member, {target :: pid(), owner_monitor :: reference(), target_monitor :: reference()}).
-record(state, {next = 1 :: pos_integer(),
                steps = [] :: [step()],  % oldest first
                members = #{} :: #{pid() => #member{}},
                venv = none :: none | map(),
                source :: binary(),  % what loads the setup module in an env
                %% New each time this server starts: interpreters that outlive
                %% it (the main one) then start their steps again.
                epoch = erlang:unique_integer([positive]) :: pos_integer()}).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Called by a starting context (`CtxRef' its native handle) before it
%% is registered: applies every step there, then keeps it up to date.
-spec join(reference()) -> ok | {error, term()}.
join(CtxRef) ->
    join_as(context, CtxRef).

%% @doc As {@link join/1}, for the event loop `LoopRef' (called by
%% py_event_loop as it starts).
-spec join_loop(reference()) -> ok | {error, term()}.
join_loop(LoopRef) ->
    join_as(loop, LoopRef).

join_as(Kind, Ref) ->
    try gen_server:call(?MODULE, {join, self(), Kind, Ref}, infinity) of
        {ok, Target} ->
            Mon = monitor(process, Target),
            receive
                {Target, caught_up, Result} ->
                    demonitor(Mon, [flush]),
                    Result;
                {'DOWN', Mon, process, Target, Why} ->
                    {error, {setup_failed, Why}}
            end
    catch
        exit:{noproc, _} -> ok;  % the application is not running: nothing to apply
        exit:{Why, _} -> {error, {py_packages, Why}}
    end.

%% @doc Puts `Dir' first on `sys.path' in every interpreter.
-spec add_path(file:name_all()) -> ok | {error, {not_a_directory, term()} | {add_path_failed, failures()}}.
add_path(Dir) ->
    case name(Dir) of
        {ok, Name} ->
            Abs = unicode:characters_to_binary(filename:absname(Name)),
            case filelib:is_dir(Abs) of
                true -> call({add, add_path, Abs, Dir});
                false -> {error, {not_a_directory, Dir}}
            end;
        error ->
            {error, {badarg, Dir}}
    end.

%% @doc Imports `Module' (a dotted name) in every interpreter.
-spec import(atom() | unicode:chardata()) -> ok | {error, {import_failed, failures()} | {badarg, term()}}.
import(Module) when is_atom(Module) ->
    call({add, import, atom_to_binary(Module), Module});
import(Module) ->
    case name(Module) of
        {ok, Name} -> call({add, import, Name, Module});
        error -> {error, {badarg, Module}}
    end.

%% @doc Runs `Code' in every interpreter; envs made afterwards start with
%% the names it defines.
-spec preload(unicode:chardata()) -> ok | {error, {preload_failed, failures()} | {badarg, term()}}.
preload(Code) ->
    case name(Code) of
        {ok, Bin} -> call({add, preload, Bin, preload});
        error -> {error, {badarg, Code}}
    end.

%% @doc Puts the site-packages of venv `Dir' (and what its `.pth' files
%% name) on `sys.path' in every interpreter, in place of any venv active
%% before. Without `include-system-site-packages' in its `pyvenv.cfg', the
%% base Python's site-packages leave `sys.path' too, as in a venv's own
%% interpreter. A venv of another Python version is refused.
-spec activate_venv(file:name_all()) -> ok | {error, term()}.
activate_venv(Dir) ->
    case py_venv:inspect(Dir) of
        {ok, Spec} -> call({add, venv, Spec, Dir});
        {error, _} = Error -> Error
    end.

%% @doc Takes the active venv's entries off `sys.path' everywhere and puts
%% the base Python's site-packages back. Modules imported from the venv
%% stay imported.
-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    call({add, no_venv, none, none}).

%% @doc The active venv: `#{active := true, path, version,
%% site_packages, system_site_packages}', or `#{active := false}'.
-spec venv_info() -> {ok, map()}.
venv_info() ->
    call(venv_info).

call({add, _, _, _} = Request) ->
    case get(py_callback_id) of
        undefined -> call_server(Request);
        _ -> {error, called_from_python}
    end;
call(Request) ->
    call_server(Request).

call_server(Request) ->
    try
        gen_server:call(?MODULE, Request, infinity)
    catch
        exit:{noproc, _} -> {error, {not_started, erlang_python}};
        exit:{Why, _} -> {error, {py_packages, Why}}
    end.

%% A non-empty path, module name or code, as UTF-8.
name(Name) ->
    case py_venv:text(Name) of
        Bin when is_binary(Bin), Bin =/= <<>> -> {ok, Bin};
        _ -> error
    end.

%% ---------------------------------------------------------------------------

%% @private
-spec init([]) -> {ok, #state{}} | {stop, term()}.
init([]) ->
    File = filename:join([code:priv_dir(erlang_python), "python", "erlang_python_setup.py"]),
    case filelib:is_regular(File) of
        true ->
            case from_app_env(#state{source = loader(File)}) of
                {ok, State} -> {ok, adopt(State)};
                Stop -> Stop
            end;
        false ->
            {stop, {setup_source_missing, File}}
    end.

%% After a restart of this server, contexts that kept running (started by
%% users; the pool restarts after it) become members again with the steps
%% of the new start.
adopt(State) ->
    lists:foldl(fun({Pid, Ref, _Mode, _Slot}, Acc) -> element(2, member(Pid, context, Ref, self(), Acc)) end,
                State, [C || {_, Ref, Mode, _} = C <- py_context_registry:contexts(),
                             Mode =/= isolated, is_reference(Ref)]).

member(Owner, Kind, Ref, ReplyTo, #state{source = Source, epoch = Epoch, steps = Steps} = State) ->
    Target = py_packages_target:start(Kind, Ref, Source, Epoch),
    ok = py_packages_target:catch_up(Target, {Steps, ReplyTo}),
    Member = #member{target = Target, owner_monitor = monitor(process, Owner),
                     target_monitor = monitor(process, Target)},
    {Target, State#state{members = (State#state.members)#{Owner => Member}}}.

%% Loads the setup module once per interpreter, from its file (the path
%% travels as hex: no quoting to get wrong), and binds `setup' in the env.
loader(File) ->
    Hex = binary:encode_hex(unicode:characters_to_binary(File)),
    <<"import importlib.util as _util, sys as _sys\n"
      "if '_erlang_python_setup' not in _sys.modules:\n"
      "    _spec = _util.spec_from_file_location('_erlang_python_setup', bytes.fromhex('", Hex/binary, "').decode())\n"
      "    _module = _util.module_from_spec(_spec)\n"
      "    _spec.loader.exec_module(_module)\n"
      "    _sys.modules.setdefault('_erlang_python_setup', _module)\n"
      "setup = _sys.modules['_erlang_python_setup'].setup\n">>.

%% The app env's venv, imports and preload are the first steps.
from_app_env(State0) ->
    case {app_env_imports(), app_env_preload(), app_env_venv()} of
        {{ok, Imports}, {ok, Preload}, {ok, Venv}} ->
            {ok, lists:foldl(fun record/2, State0, Venv ++ Imports ++ Preload)};
        {{error, Why}, _, _} -> {stop, Why};
        {_, {error, Why}, _} -> {stop, Why};
        {_, _, {error, Why}} -> {stop, Why}
    end.

app_env_imports() ->
    Imports = application:get_env(erlang_python, imports, []),
    Names = [{M, if is_atom(M) -> {ok, atom_to_binary(M)}; true -> name(M) end} || M <- list(Imports)],
    case [M || {M, error} <- Names] of
        [] when is_list(Imports) -> {ok, [{import, Name, M} || {M, {ok, Name}} <- Names]};
        _ -> {error, {badarg, {imports, Imports}}}
    end.

%% Code, or a list of code (each binary or string).
app_env_preload() ->
    Preload = application:get_env(erlang_python, preload, []),
    Codes = case is_list(Preload) andalso not io_lib:printable_unicode_list(Preload) of
                true -> [name(C) || C <- Preload];
                false when Preload =:= [] -> [];
                false -> [name(Preload)]
            end,
    case lists:member(error, Codes) of
        false -> {ok, [{preload, Code, preload} || {ok, Code} <- Codes]};
        true -> {error, {badarg, {preload, Preload}}}
    end.

app_env_venv() ->
    case application:get_env(erlang_python, venv) of
        undefined ->
            {ok, []};
        {ok, Dir} ->
            case py_venv:inspect(Dir) of
                {ok, Spec} -> {ok, [{venv, Spec, Dir}]};
                {error, Reason} -> {error, {venv, Reason}}
            end
    end.

list(L) when is_list(L) -> L;
list(_) -> [].

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}} | {noreply, #state{}}.
handle_call({join, Owner, Kind, Ref}, _From, State) ->
    {Target, State1} = member(Owner, Kind, Ref, Owner, State),
    {reply, {ok, Target}, State1};
handle_call({add, Kind, Arg, Label}, From, State) ->
    case already(Kind, Arg, State) of
        true ->
            {reply, ok, State};
        false ->
            State1 = record({Kind, Arg, Label}, State),
            Step = lists:last(State1#state.steps),
            Targets = [{Owner, T} || {Owner, #member{target = T}} <- maps:to_list(State1#state.members)],
            %% The answers are collected elsewhere: this server keeps serving
            %% (joins, venv_info, later steps) while contexts apply this one.
            Epoch = State#state.epoch,
            Collector = spawn(fun() -> collect(From, Epoch, Step, Targets) end),
            _ = [py_packages_target:step(T, Step, Collector) || {_, T} <- Targets],
            {noreply, State1}
    end;
handle_call(venv_info, _From, #state{venv = none} = State) ->
    {reply, {ok, #{active => false}}, State};
handle_call(venv_info, _From, #state{venv = Spec} = State) ->
    {reply, {ok, Spec#{active => true}}, State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({drop, Epoch, Seq}, #state{epoch = Epoch} = State) ->
    {noreply, State#state{steps = lists:keydelete(Seq, 1, State#state.steps)}};
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({'DOWN', Mon, process, _, _}, #state{members = Members} = State) ->
    case [{Owner, M} || {Owner, #member{owner_monitor = O, target_monitor = T} = M} <- maps:to_list(Members),
                        O =:= Mon orelse T =:= Mon] of
        [{Owner, #member{target = Target, owner_monitor = O, target_monitor = T}}] ->
            demonitor(O, [flush]),
            demonitor(T, [flush]),
            exit(Target, kill),
            {noreply, State#state{members = maps:remove(Owner, Members)}};
        [] ->
            {noreply, State}
    end;
handle_info({Target, caught_up, {error, Why}}, State) when is_pid(Target) ->
    %% an adopted context could not take the steps: it goes on without them
    logger:warning("py_packages: a running context did not take the steps again after a restart: ~0p", [Why]),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% ---------------------------------------------------------------------------

%% Appends a step. Every step stays (but failed ones), in order: a later
%% interpreter replays them all, so what it imports finds the venv that was
%% active when the import was asked for.
record({Kind, Arg, Label}, #state{next = Seq, steps = Steps} = State) ->
    Venv = case Kind of
               venv -> Arg;
               no_venv -> none;
               _ -> State#state.venv
           end,
    State#state{next = Seq + 1, steps = Steps ++ [{Seq, Kind, Arg, Label}], venv = Venv}.

already(no_venv, _, #state{venv = none}) -> true;
already(import = Kind, Arg, #state{steps = Steps}) ->
    lists:keymember(Arg, 3, [S || {_, K, _, _} = S <- Steps, K =:= Kind]);
already(_, _, _) -> false.

failed(add_path) -> add_path_failed;
failed(import) -> import_failed;
failed(preload) -> preload_failed;
failed(venv) -> venv_failed;
failed(no_venv) -> venv_failed.

%% Waits for every target's answer to Step (a target that dies, or whose
%% context stopped, has nothing to say), answers the caller, and has a
%% step that failed somewhere dropped.
collect(From, Epoch, {Seq, Kind, _, _}, Targets) ->
    Monitors = [{Owner, T, monitor(process, T)} || {Owner, T} <- Targets],
    Answers = [{Owner, answer(T, Mon, Seq)} || {Owner, T, Mon} <- Monitors],
    case [{Owner, Why} || {Owner, {error, Why}} <- Answers] of
        [] ->
            gen_server:reply(From, ok);
        Failures ->
            %% a venv step stays: sys.path may have changed in some
            %% interpreters, and later ones should agree with them
            Kind =:= venv orelse Kind =:= no_venv orelse gen_server:cast(?MODULE, {drop, Epoch, Seq}),
            gen_server:reply(From, {error, {failed(Kind), Failures}})
    end.

answer(Target, Mon, Seq) ->
    receive
        {Target, step, Seq, Result} ->
            demonitor(Mon, [flush]),
            case Result of
                {error, context_not_running} -> {ok, gone};
                {error, context_stopped} -> {ok, gone};
                _ -> Result
            end;
        {'DOWN', Mon, process, Target, _} ->
            {ok, gone}
    end.
