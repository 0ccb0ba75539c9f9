%% @private
%% @doc Builds the maps that a context thread could not.
%%
%% On OTP 25, building a map of more than 128 keys sorts with a routine that
%% reads scheduler-only data, so it crashes on the NIF's own threads. Such
%% dicts travel as `{Marker, [{Key, Value}]}', where `Marker' is a reference
%% Python code cannot forge, and the receiving process builds them here,
%% on its scheduler.
-module(py_maps).

-export([finish/1]).

%% @doc `Result' with every deferred map built.
-spec finish({ok, term()}) -> {ok, term()}.
finish({ok, Value}) ->
    {ok, build(Value, py_nif:map_marker())}.

build({Marker, Pairs}, Marker) when is_list(Pairs) ->
    maps:from_list([{build(K, Marker), build(V, Marker)} || {K, V} <- Pairs]);
build(List, Marker) when is_list(List) ->
    [build(X, Marker) || X <- List];
build(Tuple, Marker) when is_tuple(Tuple) ->
    list_to_tuple([build(X, Marker) || X <- tuple_to_list(Tuple)]);
build(Map, Marker) when is_map(Map) ->
    maps:from_list([{build(K, Marker), build(V, Marker)} || {K, V} <- maps:to_list(Map)]);
build(Other, _Marker) ->
    Other.
