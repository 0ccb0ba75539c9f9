%% @private
%% @doc Streams (spec §9) on an isolated context (spec §11).
%%
%% The worker steps the generator between requests, as a context thread
%% does, and never past the window: it holds the credit, and an owner's
%% `py:stream_ack' writes more of it straight to the port. Items come back
%% to the context process, which decodes each and sends it to the owner as
%% `{py_stream, Ref, {data, V}}', then `done' or `{error, R}'. Because only
%% the context process sends them, a cancel made through it
%% (`gen_server:call') is the last word: nothing of that stream follows its
%% `ok'. What the generator prints goes to the owner's group leader through
%% py_relay, and from then on the stream's messages wait there behind its
%% text, coming back here to be sent, so that a cancel still stops them.
%%
%% A stream's Ref is a release token ({@link py_nif:release_token/2}) that
%% names its context, so an ack or cancel finds it without a table. The
%% owner is monitored: its exit closes the generator. A guard process
%% linked to the context tells the owners of streams still running how the
%% context ended, however it ended (killed included).
-module(py_isolated_stream).

%% the caller's side
-export([start/4, ack/2, cancel/1]).
%% the context process's side
-export([new/0, started/4, cancelled/3, from_worker/5, output/4, owner_down/3, relayed/3, count/1]).

-export_type([streams/0]).

-record(stream, {ref :: reference(), owner :: pid(), mon :: reference(),
                 relayed = false :: boolean()}).

-record(streams, {by_id = #{} :: #{pos_integer() => #stream{}},
                  by_mon = #{} :: #{reference() => pos_integer()},
                  guard :: pid() | undefined}).

-opaque streams() :: #streams{}.

%% Frame kinds: see priv/python/isolated/erlang_python_isolated.py.
-define(TO_STREAM_START, 9).
-define(TO_STREAM_ACK, 10).
-define(TO_STREAM_CANCEL, 11).
-define(K_STREAM_ITEM, 13).
-define(K_STREAM_ITEM_WITH_HANDLES, 14).
-define(K_STREAM_END, 15).
-define(K_STREAM_FAILED, 16).

-define(MAX_COUNT, ((1 bsl 63) - 1)).

%% ---------------------------------------------------------------------------
%% The caller's side

%% @doc Starts streaming what `Op' (a call) returns, in `Env', to `Owner';
%% `Window' 0 is none.
-spec start(py_isolated_call:env(), pid(), non_neg_integer(), tuple()) -> {ok, reference()} | {error, term()}.
start(Env, Owner, Window, Op) ->
    case py_isolated_call:stream_request(Env, Op) of
        {ok, {Ctx, Parent, Frame}} ->
            Result = try gen_server:call(Ctx, {py_isolated_stream_start, Owner, Window, Parent, Frame}, infinity)
                     catch exit:_ -> {error, context_not_running}
                     end,
            %% the env must outlive the start: the worker holds it from there
            py_isolated_call:keep(Env),
            Result;
        {error, _} = Error ->
            Error
    end.

%% @doc py:stream_ack/2 of an isolated context's stream, or `not_isolated'.
%% An ack of a stream that has ended is harmless, as in-process.
-spec ack(term(), term()) -> ok | {error, {badarg, count}} | not_isolated.
ack(Ref, Count) ->
    case stream_of(Ref) of
        {Ctx, Id} when is_integer(Count), Count >= 1 ->
            case py_context_registry:lookup(Ctx) of
                {ok, {py_isolated, Ctx, Port, _, _}} ->
                    _ = (catch port_command(Port, <<?TO_STREAM_ACK, Id:64, (min(Count, ?MAX_COUNT)):64>>)),
                    ok;
                _ ->
                    ok
            end;
        {_, _} ->
            {error, {badarg, count}};
        error ->
            not_isolated
    end.

%% @doc py:stream_cancel/1 of an isolated context's stream, or
%% `not_isolated'. Once `ok' is returned, the context sends no message of
%% the stream.
-spec cancel(term()) -> ok | not_isolated.
cancel(Ref) ->
    case stream_of(Ref) of
        {Ctx, Id} ->
            try gen_server:call(Ctx, {py_isolated_stream_cancel, Id}, infinity)
            catch exit:_ -> ok  % a context gone sends nothing more
            end;
        error ->
            not_isolated
    end.

stream_of(Ref) when is_reference(Ref) ->
    case py_nif:release_token_info(Ref) of
        {Ctx, {py_isolated_stream, Id}} -> {Ctx, Id};
        _ -> error
    end;
stream_of(_) ->
    error.

%% ---------------------------------------------------------------------------
%% The context process's side

%% @doc No streams yet; the guard is linked to the calling context process.
-spec new() -> streams().
new() ->
    Ctx = self(),
    #streams{guard = spawn_link(fun() -> guard(Ctx) end)}.

%% @doc A stream to start: its Ref, once the worker has been told.
-spec started({pid(), non_neg_integer(), non_neg_integer(), binary()}, port(), pid(), streams()) ->
          {{ok, reference()} | {error, term()}, streams()}.
started({Owner, Window, Parent, Frame}, Port, Ctx, #streams{by_id = ById, by_mon = ByMon, guard = Guard} = S) ->
    Id = erlang:unique_integer([positive]),
    case py_nif:release_token(Ctx, {py_isolated_stream, Id}) of
        Ref when is_reference(Ref) ->
            Mon = monitor(process, Owner),
            Guard ! {started, Id, Owner, Ref},
            port_command(Port, [<<?TO_STREAM_START, Id:64, Parent:64, (min(Window, ?MAX_COUNT)):64>>, Frame]),
            {{ok, Ref}, S#streams{by_id = ById#{Id => #stream{ref = Ref, owner = Owner, mon = Mon}},
                                  by_mon = ByMon#{Mon => Id}}};
        {error, _} = Error ->
            {Error, S}
    end.

%% @doc A cancel: nothing of stream `Id' is sent after this; the worker
%% closes its generator.
-spec cancelled(pos_integer(), port(), streams()) -> streams().
cancelled(Id, Port, #streams{by_id = ById} = S) ->
    case is_map_key(Id, ById) of
        true ->
            port_command(Port, <<?TO_STREAM_CANCEL, Id:64>>),
            forget(Id, S);
        false ->
            S
    end.

%% @doc The owner of a stream exited: the worker closes its generator.
%% `not_mine' for a monitor that is not a stream's.
-spec owner_down(reference(), port(), streams()) -> streams() | not_mine.
owner_down(Mon, Port, #streams{by_mon = ByMon} = S) ->
    case ByMon of
        #{Mon := Id} -> cancelled(Id, Port, S);
        _ -> not_mine
    end.

%% @doc A stream frame from the worker (`Kind', for stream `Id').
-spec from_worker(non_neg_integer(), pos_integer(), binary(), {pid(), port(), reference()}, streams()) -> streams().
from_worker(Kind, Id, Payload, {Ctx, Port, Marker}, #streams{by_id = ById} = S) ->
    case ById of
        #{Id := Stream} ->
            case message(Kind, Payload, Ctx, Port) of
                {data, _} = Data ->
                    send(Id, Stream, Data, S);
                {error, _} = Error when Kind =:= ?K_STREAM_ITEM; Kind =:= ?K_STREAM_ITEM_WITH_HANDLES ->
                    %% an item the VM cannot take (an atom past the budget)
                    %% ends the stream; the worker closes the generator
                    port_command(Port, <<?TO_STREAM_CANCEL, Id:64>>),
                    ended(Id, Stream, Error, S);
                End ->
                    ended(Id, Stream, End, S)
            end;
        _ when Kind =:= ?K_STREAM_ITEM_WITH_HANDLES ->
            %% cancelled meanwhile: nobody holds the handles it made
            ok = py_isolated_call:drop_handles(Port, Payload, Marker),
            S;
        _ ->
            S
    end.

%% @doc Text the worker printed while stepping stream `Id': to the owner's
%% group leader, through py_relay; `not_stream' for another id.
-spec output(pos_integer(), atom(), term(), streams()) -> streams() | not_stream.
output(Id, Kind, Text, #streams{by_id = ById} = S) ->
    case ById of
        #{Id := #stream{owner = Owner} = Stream} ->
            case whereis(py_relay) of
                undefined ->
                    S;
                Relay ->
                    %% (a remote owner's group leader is not known here:
                    %% the text goes where the context's own would)
                    For = case node(Owner) =:= node() of
                              true -> Owner;
                              false -> self()
                          end,
                    Relay ! {'$py_output', For, Kind, Text, 0},
                    S#streams{by_id = ById#{Id => Stream#stream{relayed = true}}}
            end;
        _ ->
            not_stream
    end.

%% @doc A message of stream `Id' back from py_relay, its text written: sent
%% now, unless the stream was cancelled meanwhile.
-spec relayed(pos_integer(), term(), streams()) -> streams().
relayed(Id, Message, #streams{by_id = ById} = S) ->
    case ById of
        #{Id := #stream{ref = Ref, owner = Owner}} ->
            Owner ! {py_stream, Ref, Message},
            case Message of
                {data, _} -> S;
                _ -> forget(Id, S)
            end;
        _ ->
            S
    end.

%% @doc How many streams the context sends.
-spec count(streams()) -> non_neg_integer().
count(#streams{by_id = ById}) ->
    map_size(ById).

%% ---------------------------------------------------------------------------

message(?K_STREAM_ITEM, Payload, _Ctx, _Port) ->
    case py_isolated_call:decode(Payload) of
        {ok, Item} -> {data, Item};
        {error, _} = Error -> Error
    end;
message(?K_STREAM_ITEM_WITH_HANDLES, Payload, Ctx, Port) ->
    case py_isolated_call:decode(Payload) of
        {ok, Item} -> {data, py_isolated_call:with_handles(Ctx, Port, Item)};
        {error, _} = Error -> Error
    end;
message(?K_STREAM_END, Payload, _Ctx, _Port) ->
    %% done, or {error, Reason}: a conversion error or an interrupt
    case py_isolated_call:decode(Payload) of
        {ok, End} -> End;
        {error, _} = Error -> Error
    end;
message(?K_STREAM_FAILED, Payload, _Ctx, _Port) ->
    case py_isolated_call:decode(Payload) of
        {ok, {{error, {Type, Message}}, _Traceback}} -> {error, {py_isolated_call:exception_name(Type), Message}};
        {error, _} = Error -> Error
    end.

send(_Id, #stream{relayed = false, ref = Ref, owner = Owner}, Message, S) ->
    Owner ! {py_stream, Ref, Message},
    S;
send(Id, #stream{owner = Owner}, Message, S) ->
    %% behind the text the owner's group leader has still to write
    case whereis(py_relay) of
        undefined -> relayed(Id, Message, S);
        Relay -> Relay ! {'$py_after_text', Owner, self(), {py_isolated_stream_out, Id, Message}}, S
    end.

ended(Id, #stream{relayed = false} = Stream, End, S) ->
    forget(Id, send(Id, Stream, End, S));
ended(Id, Stream, End, S) ->
    %% forgotten once it is back from py_relay
    send(Id, Stream, End, S).

forget(Id, #streams{by_id = ById, by_mon = ByMon, guard = Guard} = S) ->
    case maps:take(Id, ById) of
        {#stream{mon = Mon}, Rest} ->
            demonitor(Mon, [flush]),
            Guard ! {ended, Id},
            S#streams{by_id = Rest, by_mon = maps:remove(Mon, ByMon)};
        error ->
            S
    end.

%% The guard: knows the owners of the streams still running, and when the
%% context goes, however it goes, tells each how.
guard(Ctx) ->
    process_flag(trap_exit, true),
    guard(Ctx, #{}).

guard(Ctx, Running) ->
    receive
        {started, Id, Owner, Ref} ->
            guard(Ctx, Running#{Id => {Owner, Ref}});
        {ended, Id} ->
            guard(Ctx, maps:remove(Id, Running));
        {'EXIT', Ctx, Why} ->
            Error = {error, py_isolated_call:down_reason(Why)},
            _ = [Owner ! {py_stream, Ref, Error} || {Owner, Ref} <- maps:values(Running)],
            ok;
        _ ->
            guard(Ctx, Running)
    end.
