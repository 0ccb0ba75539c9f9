%% @doc A caller's stand-in on a context's node (see {@link py_remote}).
%%
%% It makes the caller's calls there, so the caller's envs on this node are
%% its own, and end with it: a watcher kills it when the caller goes
%% (exits, or its node is lost), even in the middle of a call. It takes the
%% caller's group leader for each call, so Python's print output goes back
%% to the caller's.
%%
%% Answers that come later are a forwarder's, a process linked to the
%% proxy: it makes the spawn_calls and owns the streams (in the caller's
%% env, which any process may use), and passes their answers and messages
%% to the caller's stub on the caller's node ({@link py_remote_stub}) at
%% once, even while the proxy waits for a call of the caller.
-module(py_remote_proxy).

-export([start_link/1]).
-export([init/1]).

-record(state, {
    caller :: pid(),
    forwarder :: pid(),
    envs = [] :: [reference()]  % explicit envs made for the caller: held here
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
    Forwarder = spawn_link(fun() -> forward(#{}) end),
    loop(#state{caller = Caller, forwarder = Forwarder}).

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
        _Stray ->
            loop(S)
    end.

%% The calls a caller may make here, by name.
run(spawn_call, [Stub, Ctx, Module, Function, Args, Kwargs], Tag, S) ->
    reply(S, Tag, ask(S, {spawn_call, env(Ctx), Stub, Module, Function, Args, Kwargs}));
run(stream_start, [Stub, Ctx, Module, Function, Args, Opts], Tag, S) ->
    Result = case py_stream:options(Opts#{ctx => Ctx}) of
                 {ok, {Ctx, Owner0, Window, Kwargs}} ->
                     Owner = case maps:is_key(owner, Opts) of
                                 true -> Owner0;
                                 false -> S#state.caller
                             end,
                     ask(S, {stream_start, env(Ctx), Stub, Owner, Window, Module, Function, Args, Kwargs});
                 {error, _} = Error ->
                     Error
             end,
    reply(S, Tag, Result);
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
    reply(S, Tag, Result).

plain_calls() ->
    [{exec, py, 3}, {eval, py, 4}, {call, py, 6}, {cast, py, 5},
     {context_exec, py_nif, 4}, {context_eval, py_nif, 5}].

reply(S, Tag, Result) ->
    S#state.caller ! {Tag, Result},
    S.

%% The caller's env on Ctx here (the proxy's own), for the forwarder.
env(Ctx) ->
    py_local_env:with(Ctx, fun(Env) -> {env, Env} end).

ask(S, Request) ->
    Forwarder = S#state.forwarder,
    Tag = make_ref(),
    %% with the caller's group leader: the calls' print output is read
    %% as the forwarder's (it makes them)
    Forwarder ! {self(), Tag, group_leader(), Request},
    receive {Tag, Reply} -> Reply end.  % linked: it cannot vanish unheard

%% ---------------------------------------------------------------------------
%% The forwarder. Known: a spawn_call's Ref => the stub; a stream's NIF Ref
%% => {the Ref given out, the stub}.

forward(Known) ->
    receive
        {Proxy, Tag, Leader, {spawn_call, Env, Stub, Module, Function, Args, Kwargs}} ->
            group_leader(Leader, self()),
            Ref = case Env of
                      {env, E} ->
                          case py_nif:spawn_call(E, Module, Function, Args, Kwargs) of
                              {error, Reason} -> py_nif:async_failed(Reason);
                              R -> R
                          end;
                      {error, Reason} ->
                          py_nif:async_failed(Reason)
                  end,
            %% the stub first: it must know what it owes before anything can come
            Stub ! {py_remote_track, Ref},
            Proxy ! {Tag, Ref},
            forward(Known#{Ref => Stub});
        {Proxy, Tag, Leader, {stream_start, Env, Stub, Owner, Window, Module, Function, Args, Kwargs}} ->
            group_leader(Leader, self()),
            Started = case Env of
                          {env, E} -> py_nif:stream_start(E, self(), Window, Module, Function, Args, Kwargs);
                          {error, _} = Error -> Error
                      end,
            case Started of
                {ok, Res} ->
                    Ours = make_ref(),
                    %% routable (acks, cancels) and known to the stub before anyone has it
                    true = ets:insert(py_remote_streams, {Ours, Res, Proxy, Stub, self(), Owner}),
                    Stub ! {py_remote_stream_started, Ours, Owner},
                    Proxy ! {Tag, {ok, Ours}},
                    forward(Known#{Res => {Ours, Stub}});
                {error, _} = Refused ->
                    Proxy ! {Tag, Refused},
                    forward(Known)
            end;
        {py_response, Ref, Result} = Answer when is_map_key(Ref, Known) ->
            %% a Python exception's traceback, for py:last_traceback/0 there
            Traceback = case Result of
                            {error, {_, _}} -> py_nif:async_traceback(Ref);
                            _ -> undefined
                        end,
            maps:get(Ref, Known) ! {py_remote_response, Answer, Traceback},
            forward(maps:remove(Ref, Known));
        {py_stream, Res, Message} when is_map_key(Res, Known) ->
            {Ours, Stub} = maps:get(Res, Known),
            Stub ! {py_remote_stream, Ours, Message},
            case Message of
                {data, _} -> forward(Known);
                _ -> forward(maps:remove(Res, Known))  % done, or {error, _}: its last
            end;
        {py_remote_forget, Res} ->
            %% cancelled (by py_remote here, for the stub): nothing more comes
            flush_stream(Res),
            forward(maps:remove(Res, Known));
        _Stray ->
            forward(Known)
    end.

flush_stream(Res) ->
    receive
        {py_stream, Res, _} -> flush_stream(Res)
    after 0 ->
        ok
    end.
