%% @doc The erlang_python application: checks that Python started inside the
%% NIF, then starts the supervision tree (context registry and pool).
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case py_nif:runtime_info() of
        {ok, _} -> erlang_python_sup:start_link();
        {error, Reason} -> {error, Reason}
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
