%% @private
%% @doc The process of an isolated context (spec §11): its Python runs in an
%% OS process of its own (priv/python/isolated, started by
%% priv/erlang_python_launcher), which this process starts, owns through a
%% port, and ends with itself.
%%
%% It is on the answer path but not the request path: callers write their
%% requests to the port themselves ({@link py_isolated_call}), after telling
%% this process where the answer goes (an alias of a monitor of this
%% process). Answers come back from the worker to this process, which
%% passes each to its caller without decoding it. When the worker dies
%% (a segfault, `os.abort()', `os._exit(N)', its memory limit, a kill) this
%% process exits with `{context_crashed, Why}': every caller waiting sees
%% that reason through its monitor, and a pool's supervisor restarts it.
-module(py_isolated).
-behaviour(gen_server).

-export([init_it/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-record(state, {id :: term(),
                pool = false :: boolean(),  % a slot of the application's pool
                %% requests sent and not answered (1), calls refused (2): see
                %% py_isolated_call:admitted/3
                load :: atomics:atomics_ref() | undefined,
                max_queue = 1 :: pos_integer(),
                queue_peak = 0 :: non_neg_integer(),
                marker :: reference() | undefined,  % of handles in answers
                port :: port() | undefined,  % undefined once the worker is gone
                os_pid :: non_neg_integer() | undefined,
                info = #{} :: map(),
                %% where each answer goes: an alias, or for a request made on behalf of
                %% a process that does not wait (spawn_call, cast), the process
                %% that waits for it, that process, and whether it printed
                inflight = #{} :: #{pos_integer() => reference() | {pid(), pid(), boolean()}},
                served = 0 :: non_neg_integer(),
                %% info and interrupt calls the worker's reader thread answers
                infos = #{} :: #{pos_integer() => gen_server:from()},
                %% erlang.call runners, by monitor and by call id
                callbacks = #{} :: #{reference() => non_neg_integer()},
                runners = #{} :: #{non_neg_integer() => {pid(), reference()}},
                streams :: py_isolated_stream:streams() | undefined,
                exit_why :: term()}).

%% Frame kinds: see priv/python/isolated/erlang_python_isolated.py.
-define(K_HELLO, 0).
-define(K_RESULT, 1).
-define(K_FAILURE, 2).
-define(K_OUTPUT, 3).
-define(K_SEND, 4).
-define(K_CALL, 5).
-define(K_LOG, 6).
-define(K_RESULT_WITH_HANDLES, 7).
-define(K_INFO, 8).
-define(K_SEND_WITH_HANDLES, 9).
-define(K_CALL_WITH_HANDLES, 10).
-define(K_CALL_CANCEL, 11).
-define(K_INTERRUPTED, 12).
-define(K_STREAM_ITEM, 13).
-define(K_STREAM_FAILED, 16).
-define(TO_CANCEL, 2).
-define(TO_DROP_ENV, 3).
-define(TO_DROP, 4).
-define(TO_INTERRUPT, 5).
-define(TO_REPLY, 6).
-define(TO_INFO, 8).

%% @private
%% Started by py_context:start_link(Id, isolated, Opts) through proc_lib, so
%% that a start that fails returns {error, R} without an exit signal.
-spec init_it(pid(), term(), map()) -> no_return().
init_it(Parent, Id, Opts) ->
    process_flag(trap_exit, true),
    %% Handles in answers are {Marker, Id}: a ref no one else has.
    Marker = make_ref(),
    case max_queue(Opts) of
        {ok, MaxQueue} -> start(Parent, Id, Opts, Marker, MaxQueue);
        {error, Reason} -> proc_lib:init_ack(Parent, {error, Reason}), exit(normal)
    end.

%% As in-process: the option, else the app env, else 100000.
max_queue(Opts) ->
    case maps:get(max_queue, Opts, application:get_env(erlang_python, max_queue, 100000)) of
        N when is_integer(N), N > 0 -> {ok, N};
        _ -> {error, {badarg, options}}
    end.

start(Parent, Id, Opts, Marker, MaxQueue) ->
    Load = atomics:new(2, [{signed, true}]),
    case start_worker(Opts, Marker) of
        {ok, Port, Info} ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            Slot = case maps:get(pool, Opts, false) of
                       true -> Id;
                       false -> undefined
                   end,
            case py_context_registry:register({py_isolated, self(), Port, Marker, {Load, MaxQueue}}, isolated, Slot) of
                ok ->
                    State = #state{id = Id, port = Port, os_pid = OsPid, info = Info, marker = Marker,
                                   pool = Slot =/= undefined, load = Load, max_queue = MaxQueue},
                    Deadline = erlang:monotonic_time(millisecond) + maps:get(start_timeout, Opts, 60000),
                    case import_all(maps:get(imports, Opts, []), Deadline, State) of
                        ok ->
                            proc_lib:init_ack(Parent, {ok, self()}),
                            gen_server:enter_loop(?MODULE, [], State#state{streams = py_isolated_stream:new()});
                        {error, Reason} ->
                            fail(Reason, State)
                    end;
                {error, Reason} ->
                    fail(Reason, #state{port = Port, os_pid = OsPid})
            end;
        {error, Reason} ->
            proc_lib:init_ack(Parent, {error, Reason}),
            exit(normal)
    end.

-spec fail(term(), #state{}) -> no_return().
fail(Reason, State) ->
    stop_worker(State),
    proc_lib:init_ack({error, Reason}),
    exit(normal).

%% ---------------------------------------------------------------------------
%% Starting the worker

start_worker(Opts, Marker) ->
    case command(Opts) of
        {ok, Launcher, Args} ->
            Port = open_port({spawn_executable, Launcher},
                             [{args, Args}, {packet, 4}, binary, exit_status, use_stdio, hide]),
            MarkerEtf = binary:part(term_to_binary(Marker), 1, byte_size(term_to_binary(Marker)) - 1),
            port_command(Port, term_to_binary({atom_to_binary(node(), utf8), {bytes, MarkerEtf}})),
            Timeout = maps:get(start_timeout, Opts, 60000),
            Deadline = erlang:monotonic_time(millisecond) + Timeout,
            hello(Port, Deadline, undefined);
        {error, _} = Error ->
            Error
    end.

%% The worker's first frame is its hello; a Python that is too old, or one
%% that never ran, says so in a raw term (the bootstrap, or the launcher).
hello(Port, Deadline, Why) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, <<?K_HELLO, 0:64, Hello/binary>>}} ->
            {hello, Info} = binary_to_term(Hello),
            {ok, Port, Info};
        {Port, {data, <<131, _/binary>> = Raw}} ->
            case binary_to_term(Raw) of
                {python_too_old, Version} -> hello(Port, Deadline, {python_too_old, Version});
                {py_worker_exit, Exit} when Why =:= undefined -> hello(Port, Deadline, Exit);
                _ -> hello(Port, Deadline, Why)
            end;
        {Port, {data, _}} ->
            hello(Port, Deadline, Why);
        {Port, {exit_status, Status}} ->
            {error, start_failure(Why, Status)}
    after Left ->
        stop_worker(#state{port = Port, os_pid = element(2, erlang:port_info(Port, os_pid))}),
        {error, {worker_start_failed, start_timeout}}
    end.

start_failure({python_too_old, Version}, _) -> {python_too_old, Version};
start_failure({exec_failed, Errno}, _) -> {worker_start_failed, {exec_failed, Errno}};
start_failure(undefined, Status) -> {worker_start_failed, {exit_status, Status}};
start_failure(Why, _) -> {worker_start_failed, Why}.

%% The launcher's command line, from the options of spec §11.
command(Opts) ->
    Launcher = filename:join(py_nif:priv_dir(), "erlang_python_launcher"),
    Worker = filename:join([py_nif:priv_dir(), "python", "isolated", "erlang_python_worker.py"]),
    case python(Opts) of
        {ok, Python} ->
            case limits(Opts) of
                {ok, Limits} -> {ok, Launcher, Limits ++ ["--", Python, Worker]};
                {error, _} = Error -> Error
            end;
        {error, _} = Error ->
            Error
    end.

python(#{venv := Dir}) ->
    case text(Dir) of
        {ok, D} ->
            Python = filename:join([D, "bin", "python"]),
            case filelib:is_regular(Python) of
                true -> {ok, Python};
                false -> {error, {venv_not_found, Dir}}
            end;
        error ->
            {error, {badarg, venv}}
    end;
python(#{python := Exe}) ->
    case text(Exe) of
        {ok, P} ->
            Found = case lists:member($/, P) of
                        true -> filelib:is_regular(P) andalso P;
                        false -> os:find_executable(P)
                    end,
            case Found of
                false -> {error, {python_not_found, Exe}};
                Path -> {ok, Path}
            end;
        error ->
            {error, {badarg, python}}
    end;
python(_Opts) ->
    {ok, #{executable := Exe}} = py_nif:runtime_info(),
    {ok, unicode:characters_to_list(Exe)}.

limits(Opts) ->
    Steps = [fun() -> memory_limit(maps:get(memory_limit, Opts, undefined)) end,
             fun() -> cd(maps:get(cd, Opts, undefined)) end,
             fun() -> env(maps:get(env, Opts, [])) end],
    lists:foldl(fun(Step, {ok, Acc}) ->
                        case Step() of
                            {ok, More} -> {ok, Acc ++ More};
                            {error, _} = Error -> Error
                        end;
                   (_, Error) ->
                        Error
                end, {ok, []}, Steps).

memory_limit(undefined) -> {ok, []};
memory_limit(B) when is_integer(B), B > 0 -> {ok, ["--memory-limit", integer_to_list(B)]};
memory_limit(_) -> {error, {badarg, memory_limit}}.

cd(undefined) -> {ok, []};
cd(Dir) ->
    case text(Dir) of
        {ok, D} -> {ok, ["--cd", D]};
        error -> {error, {badarg, cd}}
    end.

env(Vars) when is_list(Vars) -> env(Vars, []);
env(_) -> {error, {badarg, env}}.

env([], Acc) ->
    {ok, lists:reverse(Acc)};
env([{Name, Value} | Rest], Acc) ->
    case {text(Name), text(Value)} of
        {{ok, N}, {ok, V}} when N =/= [] ->
            case lists:member($=, N) of
                false -> env(Rest, [N ++ "=" ++ V, "--env" | Acc]);
                true -> {error, {badarg, env}}
            end;
        _ ->
            {error, {badarg, env}}
    end;
env(_, _) ->
    {error, {badarg, env}}.

text(T) when is_binary(T) ->
    case unicode:characters_to_list(T) of
        L when is_list(L) -> {ok, L};
        _ -> error
    end;
text(T) when is_atom(T) -> {ok, atom_to_list(T)};
text(T) when is_list(T) ->
    try unicode:characters_to_list(T) of
        L when is_list(L) -> {ok, L};
        _ -> error
    catch
        error:_ -> error
    end;
text(_) -> error.

%% Modules imported before anyone can call the context: a request of our
%% own, answered here (callers are not yet let in).
import_all([], _Deadline, _State) ->
    ok;
import_all([Module | Rest], Deadline, #state{port = Port} = State) ->
    Frame = term_to_binary({0, self(), {call, importlib, import_module, [Module], #{}}}),
    port_command(Port, [<<1, 0:64, 0:64>>, Frame]),
    receive
        {Port, {data, <<?K_RESULT, 0:64, _/binary>>}} -> import_all(Rest, Deadline, State);
        {Port, {data, <<?K_RESULT_WITH_HANDLES, 0:64, _/binary>>}} -> import_all(Rest, Deadline, State);
        {Port, {data, <<?K_FAILURE, 0:64, Failure/binary>>}} ->
            {ok, {{error, {Type, Message}}, _Traceback}} = py_isolated_call:decode(Failure),
            {error, {import_failed, Module, {error, {py_isolated_call:exception_name(Type), Message}}}};
        {Port, {exit_status, Status}} ->
            {error, {context_crashed, {exit_status, Status}}}
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        %% (a module that calls Erlang as it is imported waits for ever:
        %% callers are not let in yet)
        {error, {import_failed, Module, start_timeout}}
    end.

%% ---------------------------------------------------------------------------
%% gen_server

%% @private
-spec init(term()) -> {stop, term()}.
init(_) ->
    {stop, use_init_it}.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}} | {noreply, #state{}}.
handle_call(interrupt, From, #state{port = Port, infos = Infos} = State) ->
    %% the worker says whether something ran (a request still in the pipe
    %% does not: it is not interrupted)
    Id = erlang:unique_integer([positive]),
    port_command(Port, <<?TO_INTERRUPT, Id:64>>),
    {noreply, State#state{infos = Infos#{Id => From}}};
handle_call(info, From, #state{port = Port, infos = Infos} = State) ->
    %% the worker's reader thread counts its envs and handles, whatever the
    %% main thread runs; the answer comes as a frame (handle_info)
    Id = erlang:unique_integer([positive]),
    port_command(Port, <<?TO_INFO, Id:64>>),
    {noreply, State#state{infos = Infos#{Id => From}}};
handle_call({py_isolated_stream_start, Owner, Window, Parent, Frame}, _From, #state{port = Port, load = Load} = State) ->
    %% a stream is refused as a call is (see py_isolated_call:admitted/3)
    case Parent =:= 0 andalso atomics:get(Load, 1) > State#state.max_queue of
        true ->
            atomics:add(Load, 2, 1),
            {reply, {error, overloaded}, State};
        false ->
            {Reply, Streams} = py_isolated_stream:started({Owner, Window, Parent, Frame}, Port, self(), State#state.streams),
            {reply, Reply, State#state{streams = Streams}}
    end;
handle_call({py_isolated_stream_cancel, Id}, _From, #state{port = Port} = State) ->
    {reply, ok, State#state{streams = py_isolated_stream:cancelled(Id, Port, State#state.streams)}};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({py_isolated_request, Id, Alias}, #state{inflight = Inflight} = State) ->
    {noreply, peak(State#state{inflight = Inflight#{Id => Alias}})};
handle_info({py_isolated_request, Id, Waiter, For}, #state{inflight = Inflight} = State) ->
    {noreply, peak(State#state{inflight = Inflight#{Id => {Waiter, For, false}}})};
handle_info({Port, {data, <<Kind, Id:64, Payload/binary>>}}, #state{port = Port} = State)
  when Kind =:= ?K_RESULT; Kind =:= ?K_FAILURE; Kind =:= ?K_RESULT_WITH_HANDLES ->
    case taken(Id, State) of
        {{Waiter, For, true}, Inflight} ->
            %% behind the text py_relay has still to write for that process
            Answer = {Waiter, kind(Kind), Payload},
            _ = case whereis(py_relay) of
                    undefined -> Waiter ! Answer;
                    Relay -> Relay ! {'$py_after_text', For, Waiter, Answer}
                end,
            {noreply, State#state{inflight = Inflight, served = State#state.served + 1}};
        {{Waiter, _, false}, Inflight} ->
            Waiter ! {Waiter, kind(Kind), Payload},
            {noreply, State#state{inflight = Inflight, served = State#state.served + 1}};
        {Alias, Inflight} ->
            Alias ! {Alias, kind(Kind), Payload},
            {noreply, State#state{inflight = Inflight, served = State#state.served + 1}};
        error ->
            %% its caller gave up (a timeout): no one will hold the handles
            %% in the answer, so the worker drops them now
            ok = case Kind of
                     ?K_RESULT_WITH_HANDLES -> py_isolated_call:drop_handles(Port, Payload, State#state.marker);
                     _ -> ok
                 end,
            {noreply, State#state{served = State#state.served + 1}}
    end;
handle_info({Port, {data, <<?K_INFO, Id:64, Payload/binary>>}}, #state{port = Port} = State) ->
    #state{infos = Infos, inflight = Inflight, served = Served, info = Python, os_pid = OsPid} = State,
    case maps:take(Id, Infos) of
        {From, Rest} ->
            Counts = binary_to_term(Payload),
            %% queue_length: requests sent and not yet answered, less the
            %% one the worker runs
            #{busy := Busy} = Counts,
            Queued = max(0, map_size(Inflight) - case Busy of true -> 1; false -> 0 end),
            gen_server:reply(From, {ok, Counts#{mode => isolated, running => true,
                                                queue_length => Queued, requests => Served,
                                                queue_peak => State#state.queue_peak,
                                                max_queue => State#state.max_queue,
                                                refused => atomics:get(State#state.load, 2),
                                                python => Python, launcher_os_pid => OsPid}}),
            {noreply, State#state{infos = Rest}};
        error ->
            {noreply, State}
    end;
handle_info({Port, {data, <<?K_INTERRUPTED, Id:64, Payload/binary>>}}, #state{port = Port, infos = Infos} = State) ->
    case maps:take(Id, Infos) of
        {From, Rest} ->
            gen_server:reply(From, case binary_to_term(Payload, [safe]) of
                                       true -> ok;
                                       false -> not_running
                                   end),
            {noreply, State#state{infos = Rest}};
        error ->
            {noreply, State}
    end;
handle_info({Port, {data, <<?K_OUTPUT, Id:64, Payload/binary>>}}, #state{port = Port} = State) ->
    {Kind, Text} = binary_to_term(Payload),
    case State#state.inflight of
        #{Id := {Waiter, For, _}} = Inflight ->
            %% made for a process that does not wait in receive: py_relay
            %% writes it at that process's group leader, in the order the
            %% requests printed, and the answer waits behind it
            case whereis(py_relay) of
                undefined ->
                    Waiter ! {Waiter, py_output, Kind, Text},
                    {noreply, State};
                Relay ->
                    Relay ! {'$py_output', For, Kind, Text, 0},
                    {noreply, State#state{inflight = Inflight#{Id := {Waiter, For, true}}}}
            end;
        #{Id := Alias} ->
            Alias ! {Alias, py_output, Kind, Text},
            {noreply, State};
        _ ->
            %% a stream's step, or a request whose caller has gone
            case py_isolated_stream:output(Id, Kind, Text, State#state.streams) of
                not_stream -> {noreply, State};
                Streams -> {noreply, State#state{streams = Streams}}
            end
    end;
handle_info({Port, {data, <<Kind, Id:64, Payload/binary>>}}, #state{port = Port, marker = Marker} = State)
  when Kind >= ?K_STREAM_ITEM, Kind =< ?K_STREAM_FAILED ->
    Streams = py_isolated_stream:from_worker(Kind, Id, Payload, {self(), Port, Marker}, State#state.streams),
    {noreply, State#state{streams = Streams}};
handle_info({py_isolated_stream_out, Id, Message}, State) ->
    {noreply, State#state{streams = py_isolated_stream:relayed(Id, Message, State#state.streams)}};
handle_info({Port, {data, <<Kind, CallId:64, Payload/binary>>}}, #state{port = Port} = State)
  when Kind =:= ?K_SEND; Kind =:= ?K_SEND_WITH_HANDLES ->
    %% erlang.send raises ProcessLookupError for a process that is not
    %% there, as in-process: the worker waits for this answer
    Delivered = case from_worker(Kind =:= ?K_SEND_WITH_HANDLES, Port, Payload) of
                    {ok, {To, Msg}} -> deliver(To, Msg);
                    {error, Reason} -> {error, py_callbacks:format(Reason)}
                end,
    port_command(Port, [<<?TO_REPLY, CallId:64>>, term_to_binary(Delivered)]),
    {noreply, State};
handle_info({Port, {data, <<Kind, CallId:64, Payload/binary>>}}, #state{port = Port} = State)
  when Kind =:= ?K_CALL; Kind =:= ?K_CALL_WITH_HANDLES ->
    case from_worker(Kind =:= ?K_CALL_WITH_HANDLES, Port, Payload) of
        {ok, {Name, Args, Caller}} ->
            {noreply, run_callback(CallId, Name, Args, Caller, State)};
        {error, Reason} ->
            port_command(Port, [<<?TO_REPLY, CallId:64>>,
                                term_to_binary({error, error, none, py_callbacks:format(Reason)})]),
            {noreply, State}
    end;
handle_info({py_isolated_reply, CallId, Reply}, #state{port = Port, runners = Runners} = State) ->
    case maps:take(CallId, Runners) of
        {{_, MRef}, Rest} ->
            demonitor(MRef, [flush]),
            port_command(Port, [<<?TO_REPLY, CallId:64>>, Reply]),
            {noreply, State#state{runners = Rest, callbacks = maps:remove(MRef, State#state.callbacks)}};
        error ->
            {noreply, State}
    end;
handle_info({'DOWN', MRef, process, _, Reason}, #state{callbacks = Callbacks, port = Port} = State)
  when is_map_key(MRef, Callbacks) ->
    %% a runner that ended without replying (killed, or exit(self(),
    %% normal)): the worker waits for exactly one reply
    {CallId, Rest} = maps:take(MRef, Callbacks),
    port_command(Port, [<<?TO_REPLY, CallId:64>>, term_to_binary({error, exit, none, py_callbacks:format(Reason)})]),
    {noreply, State#state{callbacks = Rest, runners = maps:remove(CallId, State#state.runners)}};
handle_info({'DOWN', MRef, process, _, _}, #state{port = Port, streams = Streams0} = State) ->
    %% the owner of a stream: the worker closes its generator
    case py_isolated_stream:owner_down(MRef, Port, Streams0) of
        not_mine -> {noreply, State};
        Streams -> {noreply, State#state{streams = Streams}}
    end;
handle_info({Port, {data, <<?K_CALL_CANCEL, CallId:64>>}}, #state{port = Port, runners = Runners} = State) ->
    %% the Python code waiting for it was cancelled: its runner stops
    case Runners of
        #{CallId := {Pid, _}} -> exit(Pid, kill);
        _ -> ok
    end,
    {noreply, State};
handle_info({Port, {data, <<?K_LOG, _:64, Payload/binary>>}}, #state{port = Port} = State) ->
    %% (only binaries, integers and a pid: safe)
    {Level, Name, Message, File, Line, Function, Caller} = binary_to_term(Payload, [safe]),
    py_logger ! {py_log, Level, Name, Message, #{file => File, line => Line, function => Function,
                                                 caller => case is_pid(Caller) of true -> Caller; false -> undefined end}},
    {noreply, State};
handle_info({Port, {data, <<131, _/binary>> = Raw}}, #state{port = Port} = State) ->
    %% the launcher's last word: how the worker ended
    case binary_to_term(Raw) of
        {py_worker_exit, Why} -> {noreply, State#state{exit_why = Why}};
        _ -> {noreply, State}
    end;
handle_info({py_isolated_cancel, Id}, #state{port = Port} = State) ->
    case taken(Id, State) of
        {_Alias, Rest} ->
            port_command(Port, <<?TO_CANCEL, Id:64>>),
            {noreply, State#state{inflight = Rest}};
        error ->
            {noreply, State}
    end;
handle_info({py_isolated_drop_env, EnvId}, #state{port = Port} = State) ->
    port_command(Port, <<?TO_DROP_ENV, EnvId:64>>),
    {noreply, State};
handle_info({py_isolated_drop, HandleId}, #state{port = Port} = State) ->
    port_command(Port, <<?TO_DROP, HandleId:64>>),
    {noreply, State};
handle_info({Port, {exit_status, Status}}, #state{port = Port, exit_why = Why} = State) ->
    Reason = case Why of
                 undefined -> {exit_status, Status};
                 _ -> Why
             end,
    crashed({context_crashed, Reason}, State#state{port = undefined});
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    crashed({context_crashed, {port_closed, Reason}}, State#state{port = undefined});
handle_info(_Msg, State) ->
    {noreply, State}.

%% The worker died: the context exits with `Reason', and the crash is
%% reported once. A pool's supervisor reports it (and restarts the
%% context); a context started by anyone else reports it here. gen_server's
%% own report would be a second one, so the process does terminate's work
%% and then ends by an exit signal to itself, which gen_server never sees.
-spec crashed(term(), #state{}) -> no_return().
crashed(Reason, #state{id = Id, pool = Pool} = State) ->
    _ = case Pool of
            true -> ok;
            false -> logger:error("erlang_python: isolated context ~0p crashed: ~0p", [Id, Reason],
                                  #{domain => [erlang_python]})
        end,
    ok = terminate(Reason, State),
    process_flag(trap_exit, false),
    exit(self(), Reason),
    receive after infinity -> ok end.

%% Request Id's entry, taken out of those not yet answered.
taken(Id, #state{inflight = Inflight, load = Load}) ->
    case maps:take(Id, Inflight) of
        {_, _} = Taken -> atomics:sub(Load, 1, 1), Taken;
        error -> error
    end.

%% The longest the queue has been: those not yet answered, less the one the
%% worker runs.
peak(#state{inflight = Inflight, queue_peak = Peak} = State) ->
    State#state{queue_peak = max(Peak, map_size(Inflight) - 1)}.

kind(?K_RESULT) -> result;
kind(?K_RESULT_WITH_HANDLES) -> result_with_handles;
kind(?K_FAILURE) -> failure.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, State) ->
    ok = py_context_registry:unregister(),
    stop_worker(State).

%% The launcher kills the worker at once on SIGTERM, whatever the worker is
%% doing (a worker that is not stuck would also go on the port's close).
stop_worker(#state{port = undefined}) ->
    ok;
stop_worker(#state{port = Port, os_pid = OsPid}) ->
    _ = os:cmd("kill -TERM " ++ integer_to_list(OsPid)),
    catch port_close(Port),
    ok.

%% ---------------------------------------------------------------------------
%% Terms from the worker: erlang.send and erlang.call.

%% A message or call from the worker, its handles made tokens.
from_worker(Handles, Port, Payload) ->
    case py_isolated_call:decode(Payload) of
        {ok, Term} when Handles -> {ok, py_isolated_call:with_handles(self(), Port, Term)};
        Decoded -> Decoded
    end.

%% erlang.call from the worker: run in a process of its own (it may call
%% this context again, which the worker serves while it waits), watched so
%% that the worker gets exactly one reply; with the group leader of the
%% process whose call it is.
run_callback(CallId, Name, Args, Caller, #state{callbacks = Callbacks, runners = Runners} = State) ->
    Ctx = self(),
    {Pid, MRef} = spawn_monitor(fun() -> callback(Ctx, CallId, Name, Args, Caller) end),
    State#state{callbacks = Callbacks#{MRef => CallId}, runners = Runners#{CallId => {Pid, MRef}}}.

deliver(To, Msg) when is_pid(To) ->
    case node(To) =:= node() andalso not is_process_alive(To) of
        true -> false;
        false -> To ! Msg, true
    end;
deliver({Name}, Msg) when is_binary(Name) ->
    case registered(Name) of
        undefined -> false;
        Pid -> Pid ! Msg, true
    end;
deliver(_, _) ->
    false.

callback(Ctx, CallId, Name, Args, Caller) ->
    %% a request this function makes to the context runs nested in the call
    put(py_isolated_parent, {Ctx, CallId}),
    %% Python threads call with no caller: the context's group leader stays
    py_callbacks:take_group_leader(case is_pid(Caller) of true -> Caller; false -> undefined end),
    %% the worker waits for exactly one reply, whatever happens here
    Result = try
                 case {Name, Args} of
                     {<<"_py_whereis">>, _} -> whereis_name(Args);
                     {<<"_py_registered">>, [N]} -> {ok, py_callbacks:is_registered(N)};
                     _ -> py_callbacks:run(Name, Args)
                 end
             catch
                 Class:Reason -> {error, Class, Reason, py_callbacks:format(Reason)}
             end,
    Reply = case py_nif:encode_request(for_python(Result)) of
                {error, {argument_too_large, Max}} ->
                    Text = io_lib:format("the Erlang function's result is larger than ~b bytes as a term", [Max]),
                    term_to_binary({error, error, {result_too_large, Max}, iolist_to_binary(Text)});
                Bin ->
                    Bin
            end,
    Ctx ! {py_isolated_reply, CallId, Reply},
    ok.

whereis_name([Name]) when is_binary(Name) ->
    {ok, case registered(Name) of undefined -> none; Pid -> Pid end};
whereis_name(_) ->
    {error, error, badarg, <<"erlang.whereis takes one name">>}.

%% The process registered under the name `Name' (a binary), making no atom
%% for a name no process has.
registered(Name) ->
    try whereis(binary_to_existing_atom(Name, utf8))
    catch error:badarg -> undefined
    end.

%% An Erlang reason may hold terms Python has no form for (funs, ports):
%% those reach Python as None, with the text beside them.
for_python({error, Class, Reason, Text}) ->
    {error, Class, case convertible(Reason, 0) of true -> Reason; false -> none end, Text};
for_python(Ok) ->
    Ok.

convertible(_, Depth) when Depth > 100 -> false;
convertible(T, _) when is_atom(T); is_number(T); is_binary(T); is_pid(T); is_reference(T) -> true;
convertible(T, D) when is_list(T) -> lists:all(fun(X) -> convertible(X, D + 1) end, T);
convertible(T, D) when is_tuple(T) -> convertible(tuple_to_list(T), D);
convertible(T, D) when is_map(T) -> convertible(maps:to_list(T), D);
convertible(_, _) -> false.
