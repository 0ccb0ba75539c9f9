%% @private
%% @doc The calling process's implicit env on each context (spec §3): made
%% on first use, kept in the process dictionary under `py_local_env'
%% (a map of context pid to env), and freed when the process exits (the env
%% is a NIF resource the process holds).
-module(py_local_env).

-export([with/2]).

%% @doc `Fun(Env)' with the caller's env on `Ctx'; an env whose context has
%% gone is forgotten, so the next call makes a new one.
-spec with(pid() | term(), fun((py_nif:env_ref()) -> Result)) -> Result | {error, term()}.
with(Ctx, _Fun) when not is_pid(Ctx) ->
    {error, {badarg, context}};
with(Ctx, Fun) ->
    case env(Ctx) of
        {ok, Env} ->
            case Fun(Env) of
                {error, context_not_running} = Error ->
                    forget(Ctx),
                    Error;
                Result ->
                    Result
            end;
        {error, _} = Error ->
            Error
    end.

env(Ctx) ->
    case get(py_local_env) of
        #{Ctx := Env} -> {ok, Env};
        undefined -> new(Ctx, #{});
        Envs -> new(Ctx, Envs)
    end.

%% Envs of contexts that have died are dropped here, so a long-lived process
%% does not keep their namespaces (and everything in them) alive.
new(Ctx, Envs0) ->
    Envs = maps:filter(fun(Pid, _) -> is_process_alive(Pid) end, Envs0),
    case py_context_registry:lookup(Ctx) of
        {ok, CtxRef} ->
            case env_new(CtxRef) of
                {ok, Env} ->
                    put(py_local_env, Envs#{Ctx => Env}),
                    {ok, Env};
                {error, _} = Error ->
                    Error
            end;
        error ->
            {error, context_not_running}
    end.

env_new({py_isolated, _, _, _, _} = CtxRef) -> py_isolated_call:env_new(CtxRef);
env_new(CtxRef) -> py_nif:env_new(CtxRef).

forget(Ctx) ->
    case get(py_local_env) of
        #{Ctx := _} = Envs -> put(py_local_env, maps:remove(Ctx, Envs));
        _ -> ok
    end.
