%% @private
%% @doc Builds the maps that a context thread could not.
%%
%% On OTP 25, building a map of more than 128 keys sorts with a routine that
%% reads scheduler-only data, so it crashes on the NIF's own threads. Such
%% dicts travel as `{Marker, [{Key, Value}]}', where `Marker' is a reference
%% Python code cannot forge, and the receiving process builds them on a
%% scheduler: with `py_nif:finish_maps/1' (a dirty NIF that rebuilds only
%% the containers on the way to a marker), or here in Erlang for markers
%% nested deeper than that NIF's stack allows.
-module(py_maps).

-export([finish/1]).

%% @doc `Result' with every deferred map built. Two pairs with one key (the
%% NIF refuses dicts whose keys collide before they get here; this is the
%% last line) make `{error, {duplicate_key, Key}}' rather than a smaller map.
-spec finish({ok, term()}) -> {ok, term()} | {error, {duplicate_key, term()} | no_memory}.
finish({ok, Value}) ->
    case py_nif:finish_maps(Value) of
        too_deep -> finish_here(Value);
        Result -> Result
    end.

finish_here(Value) ->
    try
        {ok, build(Value, py_nif:map_marker())}
    catch
        throw:{duplicate_key, _} = Reason -> {error, Reason}
    end.

build({Marker, Pairs}, Marker) when is_list(Pairs) ->
    Built = [{build(K, Marker), build(V, Marker)} || {K, V} <- Pairs],
    Map = maps:from_list(Built),
    case map_size(Map) =:= length(Built) of
        true -> Map;
        false -> throw({duplicate_key, duplicate([K || {K, _} <- Built], #{})})
    end;
build(List, Marker) when is_list(List) ->
    [build(X, Marker) || X <- List];
build(Tuple, Marker) when is_tuple(Tuple) ->
    list_to_tuple([build(X, Marker) || X <- tuple_to_list(Tuple)]);
build(Map, Marker) when is_map(Map) ->
    maps:from_list([{build(K, Marker), build(V, Marker)} || {K, V} <- maps:to_list(Map)]);
build(Other, _Marker) ->
    Other.

duplicate([K | Rest], Seen) ->
    case Seen of
        #{K := _} -> K;
        _ -> duplicate(Rest, Seen#{K => true})
    end.
