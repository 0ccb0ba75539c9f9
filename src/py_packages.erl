%% @doc What every interpreter gets (spec §12): `sys.path' entries
%% ({@link add_path/1}), imported modules ({@link import/1}), preload code
%% ({@link preload/1}) and the active venv ({@link activate_venv/1}).
%%
%% This server keeps them as numbered steps. A step is applied at once to
%% every running context, each on its own thread in queue order (so between
%% two requests, never during one), and to every context started later
%% before anyone can call it. Worker contexts share the main interpreter:
%% there each step runs once. `py' exports the same functions; use those.
%%
%% A step that fails anywhere is dropped (the interpreters where it ran keep
%% its effect) and the error names each failing context with its Python
%% exception: `{error, {preload_failed, [{CtxPid, {Type, Message}}]}}'.
%% A step that fails in a context being started fails that start.
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

%% Where steps run: a context, or the event loop (the main interpreter even
%% when no worker context exists), through a private env there.
-type target() :: {context, reference(), reference()} | {loop, reference(), reference()}.
-record(member, {target :: target(), monitor :: reference()}).
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
    try
        gen_server:call(?MODULE, {join, self(), Kind, Ref}, infinity)
    catch
        exit:{noproc, _} -> ok  % the application is not running: nothing to apply
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

call(Request) ->
    try
        gen_server:call(?MODULE, Request, infinity)
    catch
        exit:{noproc, _} -> {error, {not_started, erlang_python}}
    end.

name(<<>>) -> error;
name(Name) when is_binary(Name) -> {ok, Name};
name(Name) when is_list(Name) ->
    try unicode:characters_to_binary(Name) of
        Bin when is_binary(Bin), Bin =/= <<>> -> {ok, Bin};
        _ -> error
    catch
        error:badarg -> error
    end;
name(_) -> error.

%% ---------------------------------------------------------------------------

%% @private
-spec init([]) -> {ok, #state{}} | {stop, term()}.
init([]) ->
    File = filename:join([code:priv_dir(erlang_python), "python", "erlang_python_setup.py"]),
    case filelib:is_regular(File) of
        true -> from_app_env(#state{source = loader(File)});
        false -> {stop, {setup_source_missing, File}}
    end.

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
    Imports = [{import, mod_name(M), M} || M <- application:get_env(erlang_python, imports, [])],
    Preload = case application:get_env(erlang_python, preload, []) of
                  Code when is_binary(Code) -> [{preload, Code, preload}];
                  Codes when is_list(Codes) -> [{preload, iolist_to_binary(C), preload} || C <- Codes]
              end,
    case application:get_env(erlang_python, venv) of
        undefined ->
            {ok, lists:foldl(fun record/2, State0, Imports ++ Preload)};
        {ok, Dir} ->
            case py_venv:inspect(Dir) of
                {ok, Spec} -> {ok, lists:foldl(fun record/2, State0, [{venv, Spec, Dir} | Imports ++ Preload])};
                {error, Reason} -> {stop, {venv, Reason}}
            end
    end.

mod_name(M) when is_atom(M) -> atom_to_binary(M);
mod_name(M) -> unicode:characters_to_binary(M).

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call({join, Pid, Kind, Ref}, _From, State) ->
    case catch_up(Kind, Ref, State) of
        {ok, Target} ->
            Member = #member{target = Target, monitor = monitor(process, Pid)},
            {reply, ok, State#state{members = (State#state.members)#{Pid => Member}}};
        {error, _} = Error ->
            {reply, Error, State}
    end;
handle_call({add, Kind, Arg, Label}, _From, State) ->
    case already(Kind, Arg, State) of
        true ->
            {reply, ok, State};
        false ->
            State1 = record({Kind, Arg, Label}, State),
            Step = lists:last(State1#state.steps),
            case [{Pid, Why} || {Pid, {error, Why}} <- broadcast(Step, State1)] of
                [] ->
                    {reply, ok, State1};
                Failures when Kind =:= venv; Kind =:= no_venv ->
                    %% sys.path may have changed in some interpreters: the
                    %% step stays, so later ones agree with them.
                    {reply, {error, {failed(Kind), Failures}}, State1};
                Failures ->
                    {reply, {error, {failed(Kind), Failures}}, State1#state{steps = State#state.steps}}
            end
    end;
handle_call(venv_info, _From, #state{venv = none} = State) ->
    {reply, {ok, #{active => false}}, State};
handle_call(venv_info, _From, #state{venv = Spec} = State) ->
    {reply, {ok, Spec#{active => true}}, State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({'DOWN', _, process, Pid, _}, State) ->
    {noreply, State#state{members = maps:remove(Pid, State#state.members)}};
handle_info(_Msg, State) ->
    {noreply, State}.

%% ---------------------------------------------------------------------------

%% Appends a step. A venv step replaces the venv steps before it: a new
%% interpreter needs only the latest.
record({Kind, Arg, Label}, #state{next = Seq, steps = Steps} = State) when Kind =:= venv; Kind =:= no_venv ->
    Kept = [S || {_, K, _, _} = S <- Steps, K =/= venv, K =/= no_venv],
    Venv = case Kind of venv -> Arg; no_venv -> none end,
    State#state{next = Seq + 1, steps = Kept ++ [{Seq, Kind, Arg, Label}], venv = Venv};
record({Kind, Arg, Label}, #state{next = Seq, steps = Steps} = State) ->
    State#state{next = Seq + 1, steps = Steps ++ [{Seq, Kind, Arg, Label}]}.

already(no_venv, _, #state{venv = none}) -> true;
already(Kind, Arg, #state{steps = Steps}) when Kind =:= add_path; Kind =:= import ->
    lists:keymember(Arg, 3, [S || {_, K, _, _} = S <- Steps, K =:= Kind]);
already(_, _, _) -> false.

failed(add_path) -> add_path_failed;
failed(import) -> import_failed;
failed(preload) -> preload_failed;
failed(venv) -> venv_failed;
failed(no_venv) -> venv_failed.

%% A new context: the setup code in a private env, then every step in order.
catch_up(Kind, Ref, #state{source = Source, steps = Steps, epoch = Epoch}) ->
    case new_env(Kind, Ref) of
        {ok, Env} ->
            Target = {Kind, Ref, Env},
            case run(Target, exec, Source, #{}) of
                ok -> sync(Target, Epoch, Steps);
                {error, Why} -> {error, {setup_failed, Why}}
            end;
        {error, _} = Error ->
            Error
    end.

new_env(context, CtxRef) -> py_nif:env_new(CtxRef);
new_env(loop, _LoopRef) -> {ok, py_nif:event_loop_env_new()}.

%% Code on a target's own thread, in its private env.
run({context, CtxRef, Env}, exec, Code, _) ->
    py_nif:context_exec(CtxRef, Code, Env);
run({context, CtxRef, Env}, eval, Expr, Locals) ->
    py_nif:context_eval(CtxRef, Expr, Locals, Env);
run({loop, LoopRef, Env}, Op, Code, Locals) ->
    py_call:submit_and_wait(LoopRef, infinity,
                            fun(Ref, Tag) -> py_nif:event_loop_code(Ref, Tag, Env, Op, Code, Locals) end).

sync(Target, Epoch, Steps) ->
    case run(Target, eval, <<"setup.sync(epoch)">>, #{epoch => Epoch}) of
        {ok, _} -> apply_all(Target, Epoch, Steps);
        {error, Why} -> {error, {setup_failed, Why}}
    end.

apply_all(Target, _Epoch, []) ->
    {ok, Target};
apply_all(Target, Epoch, [{_, Kind, _, Label} = Step | Rest]) ->
    case apply_step(Target, Epoch, Step) of
        {ok, _} -> apply_all(Target, Epoch, Rest);
        {error, Why} -> {error, start_failure(Kind, Label, Why)}
    end.

start_failure(import, Module, Why) -> {import_failed, Module, Why};
start_failure(add_path, Dir, Why) -> {add_path_failed, Dir, Why};
start_failure(preload, _, Why) -> {preload_failed, Why};
start_failure(_Venv, Dir, Why) -> {venv_failed, Dir, Why}.

apply_step(Target, Epoch, {Seq, Kind, Arg, _}) ->
    run(Target, eval, <<"setup.apply(epoch, seq, kind, arg)">>,
        #{epoch => Epoch, seq => Seq, kind => atom_to_binary(Kind), arg => Arg}).

%% The step on every member at once, each answering on its own: a context
%% busy with a long call delays only its own answer.
broadcast(Step, #state{members = Members, epoch = Epoch}) ->
    Self = self(),
    Workers = [{Pid, spawn_monitor(fun() -> Self ! {self(), apply_step(Target, Epoch, Step)} end)}
               || {Pid, #member{target = Target}} <- maps:to_list(Members)],
    [{Pid, collect(Worker, Mon)} || {Pid, {Worker, Mon}} <- Workers].

collect(Worker, Mon) ->
    receive
        {Worker, Result} ->
            demonitor(Mon, [flush]),
            case Result of
                {error, context_not_running} -> {ok, gone};
                {error, context_stopped} -> {ok, gone};
                _ -> Result
            end;
        {'DOWN', Mon, process, Worker, Why} ->
            {error, {crashed, Why}}
    end.
