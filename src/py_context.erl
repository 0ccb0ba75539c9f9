%% @doc A Python context: one OS thread, owned by the NIF, on which all of
%% the context's Python code runs (see spec §2).
%%
%% This process owns the context's lifecycle (start, stop, supervision) but
%% is not on the call path: callers find the native handle through
%% {@link py_context_registry} and enqueue directly, then wait in
%% `receive'. If this process dies, however it dies, the native context
%% stops.
%%
%% ```
%% {ok, Ctx} = py_context:start_link(1, worker),
%% {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
%% ok = py_context:stop(Ctx).
%% '''
-module(py_context).
-behaviour(gen_server).

-export([start_link/2, start_link/3, stop/1, get_nif_ref/1, create_local_env/1, info/1, interrupt/1]).
-export([init_it/4]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([mode/0, context/0]).

-type mode() :: worker | subinterp | owngil | isolated.
-type context() :: pid().
-type options() :: #{pool => boolean(),
                     imports => [atom() | binary()],
                     spin_us => non_neg_integer(),
                     code_cache_size => non_neg_integer(),
                     max_batch => pos_integer(),
                     max_queue => pos_integer(),
                     start_timeout => timeout(),
                     python => file:name_all(),
                     venv => file:name_all(),
                     memory_limit => pos_integer(),
                     env => [{unicode:chardata(), unicode:chardata()}],
                     cd => file:name_all()}.

-record(state, {id :: term(), mode :: mode(), ref :: reference()}).

%% @doc Starts a context in `Mode'. `Id' names it in {@link info/1} and logs.
-spec start_link(term(), mode()) -> {ok, pid()} | {error, term()}.
start_link(Id, Mode) ->
    start_link(Id, Mode, #{}).

%% @doc As {@link start_link/2}, with options: `imports' (modules imported
%% once the context runs), `max_queue' (requests queued at most; past it
%% calls answer `{error, overloaded}' at once; default 100000, or the app
%% env `max_queue'), `pool' (internal: a slot of the application's pool),
%% and tuning knobs `spin_us', `code_cache_size', `max_batch'.
-spec start_link(term(), mode(), options()) -> {ok, pid()} | {error, term()}.
start_link(Id, Mode, Opts) when is_map(Opts) ->
    case check_mode(Mode) of
        %% proc_lib + enter_loop rather than gen_server:start_link: a start
        %% that fails must return {error, R} without an exit signal to the
        %% caller, which OTP 25's gen_server cannot do from init/1.
        ok when Mode =:= isolated ->
            %% Python in an OS process of its own (spec §11)
            proc_lib:start_link(py_isolated, init_it, [self(), Id, Opts]);
        ok -> proc_lib:start_link(?MODULE, init_it, [self(), Id, Mode, Opts]);
        {error, _} = Error -> Error
    end;
start_link(_Id, _Mode, _Opts) ->
    {error, {badarg, options}}.

%% @doc Stops the context. Calls still queued get `{error, context_stopped}';
%% a running call is interrupted. Stopping a context that is already gone
%% is fine.
-spec stop(pid()) -> ok.
stop(Ctx) ->
    try
        gen_server:stop(Ctx)
    catch
        exit:noproc -> ok;
        exit:{noproc, _} -> ok;
        exit:normal -> ok
    end.

%% @doc The native handle of a running context, for the `py_nif' functions.
%% Raises `{context_not_running, Ctx}' if `Ctx' is not a running context.
-spec get_nif_ref(pid()) -> py_nif:ctx_ref().
get_nif_ref(Ctx) when is_pid(Ctx), node(Ctx) =/= node() ->
    %% a context on another node: its ref, good for py_nif there (spec §13)
    case py_remote:on_node(node(Ctx), ?MODULE, {get_nif_ref, [Ctx]}) of
        Ref when is_reference(Ref) -> Ref;
        _ -> erlang:error({context_not_running, Ctx})
    end;
get_nif_ref(Ctx) ->
    case py_context_registry:lookup(Ctx) of
        {ok, Ref} -> Ref;
        error -> erlang:error({context_not_running, Ctx})
    end.

%% @doc A new, empty namespace on context `Ctx', for
%% {@link py_nif:context_exec/3} and {@link py_nif:context_eval/4}. It can be
%% sent to and used by other processes; it lives while anyone holds it (and
%% its contents until its context stops).
-spec create_local_env(pid()) -> {ok, py_nif:env_ref()} | {error, term()}.
create_local_env(Ctx) when is_pid(Ctx), node(Ctx) =/= node() ->
    %% made by this process's proxy there, and held by it: it lives as long
    %% as this process (spec §13)
    py_remote:call(Ctx, {create_local_env, [Ctx]});
create_local_env(Ctx) ->
    case py_context_registry:lookup(Ctx) of
        {ok, {py_isolated, _, _, _, _} = Ref} -> py_isolated_call:env_new(Ref);
        {ok, Ref} -> py_nif:env_new(Ref);
        error -> {error, context_not_running}
    end.

%% @doc What the context is doing: mode, whether it runs, whether a request
%% runs now (`busy'), queue length, its peak and limit (`queue_peak',
%% `max_queue'), calls refused past the limit (`refused'), and requests
%% served so far.
-spec info(pid()) -> {ok, map()} | {error, term()}.
info(Ctx) when is_pid(Ctx), node(Ctx) =/= node() ->
    py_remote:on_node(node(Ctx), ?MODULE, {info, [Ctx]});
info(Ctx) ->
    case py_context_registry:lookup(Ctx) of
        {ok, {py_isolated, _, _, _, _} = Ref} -> py_isolated_call:info(Ref);
        {ok, Ref} -> {ok, py_nif:context_info(Ref)};
        error -> {error, context_not_running}
    end.

%% @doc Interrupts the call the context is running (see {@link py:interrupt/1}).
-spec interrupt(pid()) -> ok | not_running | {error, context_not_running}.
interrupt(Ctx) ->
    py:interrupt(Ctx).

%% ---------------------------------------------------------------------------

check_mode(worker) ->
    ok;
check_mode(isolated) ->
    ok;
check_mode(Mode) when Mode =:= subinterp; Mode =:= owngil ->
    case py_nif:runtime_info() of
        {ok, #{version_info := {Ma, Mi, _}} = Info} ->
            Supported = maps:get(supported_key(Mode), Info),
            case Supported of
                true -> ok;
                false -> {error, {unsupported_reason(Mode), unsupported_why(Mode, Ma, Mi)}}
            end;
        {error, _} = Error ->
            Error
    end;
check_mode(Mode) ->
    {error, {badarg, {mode, Mode}}}.

unsupported_reason(subinterp) -> subinterp_unsupported;
unsupported_reason(owngil) -> owngil_unsupported.

supported_key(subinterp) -> subinterp_supported;
supported_key(owngil) -> owngil_supported.

unsupported_why(owngil, Ma, Mi) ->
    lists:flatten(io_lib:format("Python ~b.~b: per-interpreter GILs need 3.12 or newer", [Ma, Mi]));
unsupported_why(subinterp, 3, 12) ->
    "Python 3.12: other interpreters cannot preempt a shared-GIL subinterpreter "
    "(a busy one would stall every worker context); use owngil, or Python 3.13";
unsupported_why(subinterp, Ma, Mi) ->
    lists:flatten(io_lib:format("Python ~b.~b: subinterpreters need 3.13 or newer", [Ma, Mi])).

%% @private
-spec init_it(pid(), term(), mode(), options()) -> no_return().
init_it(Parent, Id, Mode, Opts) ->
    {ok, State} = init({Id, Mode, Opts}),
    proc_lib:init_ack(Parent, {ok, self()}),
    gen_server:enter_loop(?MODULE, [], State).

%% @private
%% Runs in init_it/4; a failure acknowledges {error, R} and exits.
-spec init({term(), mode(), options()}) -> {ok, #state{}}.
init({Id, Mode, Opts}) ->
    %% Trap exits so a supervisor's shutdown runs terminate/2, which waits
    %% for Python to let go of the thread.
    process_flag(trap_exit, true),
    Tag = make_ref(),
    NifOpts = maps:with([spin_us, code_cache_size, max_batch, max_queue], with_defaults(Opts)),
    case py_nif:context_new(Mode, NifOpts, Tag) of
        {ok, Ref} ->
            Timeout = maps:get(start_timeout, Opts, 60000),
            receive
                {Tag, ok} -> joined(py_packages:join(Ref), Id, Mode, Ref, Opts);
                {Tag, {error, Reason}} -> fail(Reason)
            after Timeout ->
                fail(start_timeout)
            end;
        {error, Reason} ->
            fail(Reason)
    end.

with_defaults(Opts) ->
    Spin = application:get_env(erlang_python, context_spin_us, 50),
    MaxQueue = application:get_env(erlang_python, max_queue, 100000),
    maps:merge(#{spin_us => Spin, max_queue => MaxQueue}, Opts).

%% Paths, imports, preload and venv (spec §12) before anyone can call it.
joined(ok, Id, Mode, Ref, Opts) ->
    started(Id, Mode, Ref, Opts);
joined({error, Reason}, _Id, _Mode, _Ref, _Opts) ->
    fail(Reason).

started(Id, Mode, Ref, Opts) ->
    Slot = case maps:get(pool, Opts, false) of
               true -> Id;
               false -> undefined
           end,
    case py_context_registry:register(Ref, Mode, Slot) of
        ok ->
            case import_all(maps:get(imports, Opts, [])) of
                ok -> {ok, #state{id = Id, mode = Mode, ref = Ref}};
                {error, Reason} -> fail(Reason)
            end;
        {error, Reason} ->
            fail(Reason)
    end.

import_all([]) ->
    ok;
import_all([Module | Rest]) ->
    case py:call(self(), importlib, import_module, [Module]) of
        {ok, _} -> import_all(Rest);
        {error, Reason} -> {error, {import_failed, Module, Reason}}
    end.

%% The starter gets {error, R}; the normal exit leaves it unharmed.
-spec fail(term()) -> no_return().
fail(Reason) ->
    proc_lib:init_ack({error, Reason}),
    exit(normal).

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{id = Id, ref = Ref}) ->
    ok = py_context_registry:unregister(),
    Tag = make_ref(),
    case py_nif:context_stop(Ref, Tag) of
        ok ->
            Timeout = application:get_env(erlang_python, stop_timeout, 5000),
            receive
                {Tag, stopped} -> ok
            after Timeout ->
                logger:warning("py_context ~p: Python code did not return within ~b ms of "
                               "stop; its thread is left to finish on its own", [Id, Timeout])
            end;
        already_stopped ->
            ok
    end.
