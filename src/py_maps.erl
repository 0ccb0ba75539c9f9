%% @private
%% @doc Builds the maps that a context thread could not.
%%
%% On OTP 25, building a map of more than 128 keys sorts with a routine that
%% reads scheduler-only data, so it crashes on the NIF's own threads. Such
%% dicts travel as `{Marker, [{Key, Value}]}', where `Marker' is a reference
%% Python code cannot forge, and the receiving process builds them on its
%% own scheduler, with `py_nif:finish_maps/1' (which rebuilds only the
%% containers that lead to a marker, and moves to a dirty scheduler when
%% there are many pairs).
-module(py_maps).

-export([finish/1]).

%% @doc `Result' with every deferred map built. Two pairs with one key (the
%% NIF refuses dicts whose keys collide before they get here; this is the
%% last line) make `{error, {duplicate_key, Key}}' rather than a smaller map.
-spec finish({ok, term()}) -> {ok, term()} | {error, {duplicate_key, term()} | no_memory}.
finish({ok, Value}) ->
    py_nif:finish_maps(Value).
