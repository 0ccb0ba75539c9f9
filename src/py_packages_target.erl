%% @private
%% One process per context (or the event loop) that py_packages keeps up to
%% date: it runs the steps there, one after another, in the order
%% py_packages sends them, each as an ordinary request on the target's own
%% thread in a private env. py_packages itself never waits for Python, so a
%% context busy with a long call holds up only its own answers.
-module(py_packages_target).

-export([start/4, catch_up/2, step/3]).

-type kind() :: context | loop.
%% {Seq, Kind, what Python gets, what an error names}
-type step() :: {pos_integer(), atom(), term(), term()}.

%% @doc A target process for `Ref' (a context's or the loop's native
%% handle). `Source' loads the setup module; `Epoch' is py_packages' start.
-spec start(kind(), reference(), binary(), pos_integer()) -> pid().
start(Kind, Ref, Source, Epoch) ->
    Server = self(),
    spawn(fun() -> init(Server, Kind, Ref, Source, Epoch) end).

%% @doc Applies `Steps' first; `ReplyTo' gets `{Target, caught_up, ok | {error, R}}'.
-spec catch_up(pid(), {[step()], pid()}) -> ok.
catch_up(Target, {Steps, ReplyTo}) ->
    Target ! {catch_up, Steps, ReplyTo},
    ok.

%% @doc Applies `Step' after everything sent before; `Collector' gets
%% `{Target, step, Seq, Result}'.
-spec step(pid(), step(), pid()) -> ok.
step(Target, Step, Collector) ->
    Target ! {step, Step, Collector},
    ok.

%% A target ends with the server that made it: a restarted one makes its
%% own, with its own epoch.
init(Server, Kind, Ref, Source, Epoch) ->
    monitor(process, Server),
    receive
        {catch_up, Steps, ReplyTo} ->
            case prepare(Kind, Ref, Source, Epoch) of
                {ok, Target} ->
                    case apply_all(Target, Epoch, Steps) of
                        ok ->
                            ReplyTo ! {self(), caught_up, ok},
                            loop(Target, Epoch);
                        {error, _} = Error ->
                            ReplyTo ! {self(), caught_up, Error}
                    end;
                {error, _} = Error ->
                    ReplyTo ! {self(), caught_up, Error}
            end
    end.

loop(Target, Epoch) ->
    receive
        {step, {Seq, _, _, _} = Step, Collector} ->
            Collector ! {self(), step, Seq, apply_step(Target, Epoch, Step)},
            loop(Target, Epoch);
        {'DOWN', _, process, _, _} ->
            ok  % the server went
    end.

prepare(Kind, Ref, Source, Epoch) ->
    case new_env(Kind, Ref) of
        {ok, Env} ->
            Target = {Kind, Ref, Env},
            case run(Target, exec, Source, #{}) of
                ok ->
                    case run(Target, eval, <<"setup.sync(epoch)">>, #{epoch => Epoch}) of
                        {ok, _} -> {ok, Target};
                        {error, Why} -> {error, {setup_failed, Why}}
                    end;
                {error, Why} ->
                    {error, {setup_failed, Why}}
            end;
        {error, _} = Error ->
            Error
    end.

new_env(context, CtxRef) -> py_nif:env_new(CtxRef);
new_env(loop, _LoopRef) -> {ok, py_nif:event_loop_env_new()}.

%% Code on the target's own thread, in its private env.
run({context, CtxRef, Env}, exec, Code, _) ->
    py_nif:context_exec(CtxRef, Code, Env);
run({context, CtxRef, Env}, eval, Expr, Locals) ->
    py_nif:context_eval(CtxRef, Expr, Locals, Env);
run({loop, LoopRef, Env}, Op, Code, Locals) ->
    py_call:submit_and_wait(LoopRef, infinity,
                            fun(Ref, Tag) -> py_nif:event_loop_code(Ref, Tag, Env, Op, Code, Locals) end).

apply_all(_Target, _Epoch, []) ->
    ok;
apply_all(Target, Epoch, [{_, Kind, _, Label} = Step | Rest]) ->
    case apply_step(Target, Epoch, Step) of
        {ok, _} -> apply_all(Target, Epoch, Rest);
        {error, Why} -> {error, start_failure(Kind, Label, Why)}
    end.

%% How a step failing in a starting context names itself in the start's error.
start_failure(import, Module, Why) -> {import_failed, Module, Why};
start_failure(add_path, Dir, Why) -> {add_path_failed, Dir, Why};
start_failure(preload, _, Why) -> {preload_failed, Why};
start_failure(_Venv, Dir, Why) -> {venv_failed, Dir, Why}.

apply_step(Target, Epoch, {Seq, Kind, Arg, _}) ->
    run(Target, eval, <<"setup.apply(epoch, seq, kind, arg)">>,
        #{epoch => Epoch, seq => Seq, kind => atom_to_binary(Kind), arg => Arg}).
