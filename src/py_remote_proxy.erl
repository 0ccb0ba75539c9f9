%% @doc A caller's stand-in on a context's node (see {@link py_remote}).
%%
%% It makes the caller's calls there, so the caller's envs on this node are
%% its own, and end with it: a watcher kills it when the caller goes
%% (exits, or its node is lost), even in the middle of a call. It takes the
%% caller's group leader for each call, so Python's print output goes back
%% to the caller's. The answers of spawn_calls and the messages of streams
%% go to the caller's stub on the caller's node ({@link py_remote_stub}).
-module(py_remote_proxy).

-export([start_link/1]).
-export([init/1]).

-record(state, {
    caller :: pid(),
    stub = undefined :: pid() | undefined,
    spawned = #{} :: #{reference() => true},       % spawn_calls still running
    streams = #{} :: #{reference() => reference()}, % both ways: the NIF's Ref <=> the one given out
    envs = [] :: [reference()]                      % explicit envs made for the caller: held here
}).

%% @doc A proxy for `Caller', linked to the calling process (py_remote).
-spec start_link(pid()) -> pid().
start_link(Caller) ->
    spawn_link(?MODULE, init, [Caller]).

%% @private
-spec init(pid()) -> no_return().
init(Caller) ->
    Proxy = self(),
    spawn(fun() -> watch(Caller, Proxy) end),
    loop(#state{caller = Caller}).

watch(Caller, Proxy) ->
    CallerMon = monitor(process, Caller),
    ProxyMon = monitor(process, Proxy),
    receive
        {'DOWN', CallerMon, process, Caller, _} -> exit(Proxy, kill);
        {'DOWN', ProxyMon, process, Proxy, _} -> ok
    end.

loop(#state{caller = Caller} = S) ->
    receive
        {py_remote_call, Caller, Tag, Leader, Function, Args} ->
            group_leader(Leader, self()),
            loop(run(Function, Args, Tag, S));
        {py_response, Ref, _} = Answer when is_map_key(Ref, S#state.spawned) ->
            S#state.stub ! {py_remote_response, Answer},
            loop(S#state{spawned = maps:remove(Ref, S#state.spawned)});
        {py_stream, Ref, Message} when is_map_key(Ref, S#state.streams) ->
            Ours = maps:get(Ref, S#state.streams),
            S#state.stub ! {py_remote_stream, Ours, Message},
            case Message of
                {data, _} -> loop(S);
                _ -> loop(forget_stream(Ref, Ours, S))  % done, or {error, _}: its last
            end;
        {py_remote_forget, Ref} ->
            %% cancelled (by py_remote here, for the stub): nothing more comes
            case S#state.streams of
                #{Ref := Ours} -> loop(forget_stream(Ref, Ours, S));
                _ -> loop(S)
            end;
        _Stray ->
            %% what a cancelled stream had sent before, say: nobody wants it
            loop(S)
    end.

forget_stream(Ref, Ours, S) ->
    S#state{streams = maps:without([Ref, Ours], S#state.streams)}.

%% The calls a caller may make here, by name.
run(spawn_call, [Stub, Ctx, Module, Function, Args, Kwargs], Tag, S) ->
    Ref = py:spawn_call(Ctx, Module, Function, Args, Kwargs),
    %% the stub first: it must know what it owes before anything can come
    Stub ! {py_remote_track, Ref},
    S#state.caller ! {Tag, Ref},
    S#state{stub = Stub, spawned = maps:put(Ref, true, S#state.spawned)};
run(stream_start, [Stub, Ctx, Module, Function, Args, Opts], Tag, S) ->
    Owner = maps:get(owner, Opts, S#state.caller),
    case py:stream_start(Module, Function, Args, Opts#{ctx => Ctx, owner => self()}) of
        {ok, Ref} ->
            Ours = make_ref(),
            %% routable (acks, cancels) and known to the stub before anyone has it
            true = ets:insert(py_remote_streams, {Ours, Ref, self(), Stub}),
            Stub ! {py_remote_stream_started, Ours, Owner},
            S#state.caller ! {Tag, {ok, Ours}},
            S#state{stub = Stub, streams = maps:merge(S#state.streams, #{Ref => Ours, Ours => Ref})};
        {error, _} = Error ->
            S#state.caller ! {Tag, Error},
            S#state{stub = Stub}
    end;
run(create_local_env, [Ctx], Tag, S) ->
    Result = py_context:create_local_env(Ctx),
    S#state.caller ! {Tag, Result},
    case Result of
        {ok, Env} -> S#state{envs = [Env | S#state.envs]};  % it lives as long as the caller
        _ -> S
    end;
run(Function, Args, Tag, S) ->
    Result = case lists:keyfind(Function, 1, plain_calls()) of
                 {Function, Module, Arity} when length(Args) =:= Arity ->
                     try apply(Module, Function, Args)
                     catch
                         %% an env or handle of another node, a ref that is
                         %% not (or no longer) one of ours here
                         error:Why -> {error, {badarg, Why}};
                         %% the caller's other envs and calls here live on
                         Class:Why -> {error, {Class, Why}}
                     end;
                 _ ->
                     {error, {badarg, {remote_function, Function}}}
             end,
    S#state.caller ! {Tag, Result},
    S.

plain_calls() ->
    [{exec, py, 3}, {eval, py, 4}, {call, py, 6}, {cast, py, 5},
     {context_exec, py_nif, 4}, {context_eval, py_nif, 5}].
