%% @doc Passes on what the NIF's threads cannot send themselves, in the
%% order they sent it:
%%
%% - answers and stream messages holding maps only a scheduler may build
%%   (OTP 25), and `erlang.send' to a remote pid or with such maps;
%% - Python's `sys.stdout'/`sys.stderr' writes made for a process that is
%%   not waiting in receive for them (spec §13): a spawn_call, cast, stream,
%%   event-loop job or task. They go to that process's group leader (the
%%   VM's `user' once it has exited). The request's answer then comes here
%%   too, and goes on once the group leader has written its text, as it
%%   would after the process's own `io:format': so `ct:capture_get/0' and
%%   ExUnit's `capture_io' have the text when the answer arrives.
%%
%% It never waits for a group leader itself: each write is an io request
%% whose reply (or the group leader's exit) comes back as a message. The
%% NIF counts the bytes not yet written (16 MiB at most, for all), and this
%% process those of each group leader (4 MiB at most). A leader past its
%% bound loses its output, with one line saying so, and its callers'
%% answers stop waiting for it until it has caught up; no mailbox grows
%% without end.
-module(py_relay).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% Bytes one group leader may have waiting: past it, its output is
%% dropped here (one line says so), and everyone else's still flows.
-define(LEADER_BOUND, (4 * 1024 * 1024)).

-record(state, {
    writes = #{} :: #{reference() => {pid(), non_neg_integer(), pid()}},  % io request (a monitor) => leader, bytes, for whom
    waiting = #{} :: #{pid() => {pos_integer(), non_neg_integer()}},      % leader => writes pending, their bytes
    cut = #{} :: #{pid() => true},                                       % leaders past their bound, until caught up
    pending = #{} :: #{pid() => pos_integer()},                          % process => its writes not yet written
    held = #{} :: #{pid() => [fun(() -> term())]}                        % process => what waits for them, newest first
}).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link(?MODULE, [], []).

%% @private
%% The name is taken only after the NIF forgets what it had counted for a
%% predecessor: nothing sent to this process is counted twice.
-spec init([]) -> {ok, #state{}}.
init([]) ->
    ok = py_nif:output_reset(),
    true = register(?MODULE, self()),
    {ok, #state{}}.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, {error, unknown_call}, #state{}}.
handle_call(_Request, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({'$py_output', Pid, _Stream, Text, Cost}, S) ->
    case group_leader_of(Pid) of
        {ok, Leader} -> {noreply, write(Leader, Pid, Text, Cost, S)};
        error -> written(Cost), {noreply, S}
    end;
handle_info({io_reply, Mon, _}, S) ->
    {noreply, write_done(Mon, S)};
handle_info({'DOWN', Mon, process, _, _}, S) ->
    {noreply, write_done(Mon, S)};
handle_info({'$py_forward', To, Message}, S) ->
    {noreply, after_text(To, fun() -> To ! Message end, S)};
handle_info({'$py_response', Caller, Ref, Result}, S) ->
    Send = fun() ->
                   Caller ! {py_response, Ref, case finish(Result) of
                                                   {ok, Built} -> Built;
                                                   {error, _} = Error -> Error
                                               end}
           end,
    {noreply, after_text(Caller, Send, S)};
handle_info({'$py_stream', Ref, Owner, Message}, S) ->
    %% the NIF passes it on unless the stream was cancelled meanwhile
    Forward = fun() ->
                      case finish(Message) of
                          {ok, Built} ->
                              case py_nif:stream_forward(Ref, Built) of
                                  ok -> ok;
                                  {error, Refused} -> py_nif:stream_fail(Ref, Refused)
                              end;
                          {error, Reason} ->
                              py_nif:stream_fail(Ref, Reason)
                      end
              end,
    {noreply, after_text(Owner, Forward, S)};
handle_info({'$py_after_text', Pid, To, Message}, S) ->
    %% (an isolated context's stream: the context sends it on, unless the
    %% stream was cancelled meanwhile)
    {noreply, after_text(Pid, fun() -> To ! Message end, S)};
handle_info({'$py_send', To, Term}, S) ->
    Send = fun() ->
                   case finish(Term) of
                       {ok, Message} -> To ! Message;
                       {error, Reason} -> logger:error("erlang_python: erlang.send to ~p dropped: ~p", [To, Reason])
                   end
           end,
    %% behind what was sent to To before it (a remote To has nothing held)
    {noreply, after_text(To, Send, S)};
handle_info(_Msg, S) ->
    {noreply, S}.

%% ---------------------------------------------------------------------------

finish(Term) -> py_maps:finish({ok, Term}).

%% Where Pid's output goes: its group leader, or the VM's own once Pid is
%% gone (output from Python serving nobody goes there too).
group_leader_of(Pid) ->
    case is_process_alive(Pid) andalso process_info(Pid, group_leader) of
        {group_leader, Leader} ->
            {ok, Leader};
        _ ->
            case whereis(user) of
                undefined -> error;
                User -> {ok, User}
            end
    end.

%% Deliver() now, or once Pid's text so far has been written.
after_text(Pid, Deliver, #state{pending = Pending, held = Held} = S) ->
    case Pending of
        #{Pid := _} ->
            S#state{held = Held#{Pid => [Deliver | maps:get(Pid, Held, [])]}};
        _ ->
            Deliver(),
            S
    end.

%% An io request to Leader for Pid's output, answered (or not) later; none
%% past the leader's bound.
write(Leader, Pid, Text, Cost, #state{waiting = Waiting} = S) ->
    {_, Before} = maps:get(Leader, Waiting, {0, 0}),
    %% a leader with nothing waiting takes any one write (the NIF bounds
    %% each call's output already); one cut off takes nothing more until
    %% it has caught up, so the note is the last it gets
    case is_map_key(Leader, S#state.cut) orelse (Before > 0 andalso Before + Cost > ?LEADER_BOUND) of
        true ->
            written(Cost),
            case S#state.cut of
                #{Leader := _} ->
                    S;
                Cut ->
                    Note = <<"\n[erlang_python: output dropped: this group leader is 4 MiB behind]\n">>,
                    %% the note goes out unheld: nobody waits for it
                    S1 = request(Leader, none, Note, 0, S#state{cut = Cut#{Leader => true}}),
                    release_leader(Leader, S1)
            end;
        false ->
            request(Leader, Pid, Text, Cost, S)
    end.

request(Leader, Pid, Text, Cost, #state{writes = Writes, waiting = Waiting} = S) ->
    Mon = monitor(process, Leader),
    Leader ! {io_request, self(), Mon, {put_chars, unicode, Text}},
    {Count, Bytes} = maps:get(Leader, Waiting, {0, 0}),
    S1 = S#state{writes = Writes#{Mon => {Leader, Cost, Pid}}, waiting = Waiting#{Leader => {Count + 1, Bytes + Cost}}},
    case Pid of
        none -> S1;  % the cut note: nobody waits for it
        _ -> S1#state{pending = maps:update_with(Pid, fun(N) -> N + 1 end, 1, S1#state.pending)}
    end.

%% A reply, or the leader's exit: that write is done with. A leader with no
%% write pending is caught up (a cut note costs nothing, so bytes alone
%% cannot say).
write_done(Mon, #state{writes = Writes, waiting = Waiting} = S) ->
    case maps:take(Mon, Writes) of
        {{Leader, Cost, Pid}, Rest} ->
            demonitor(Mon, [flush]),
            written(Cost),
            S1 = case maps:get(Leader, Waiting, {1, Cost}) of
                     {Count, _} when Count =< 1 ->
                         S#state{writes = Rest, waiting = maps:remove(Leader, Waiting),
                                 cut = maps:remove(Leader, S#state.cut)};
                     {Count, Bytes} ->
                         S#state{writes = Rest, waiting = Waiting#{Leader => {Count - 1, Bytes - Cost}}}
                 end,
            one_written(Pid, S1);
        error ->
            S
    end.

%% Pid has one write fewer pending; with none left, what waited goes on.
one_written(Pid, #state{pending = Pending} = S) ->
    case Pending of
        #{Pid := N} when N > 1 -> S#state{pending = Pending#{Pid => N - 1}};
        #{Pid := _} -> release(Pid, S#state{pending = maps:remove(Pid, Pending)});
        _ -> S
    end.

release(Pid, #state{held = Held} = S) ->
    case maps:take(Pid, Held) of
        {Waiting, Rest} ->
            _ = [Deliver() || Deliver <- lists:reverse(Waiting)],
            S#state{held = Rest};
        error ->
            S
    end.

%% Leader was cut off: its writes stop counting for the processes they
%% were for (their answers no longer wait for them: the text may never be
%% written), and those with nothing else pending get what waited.
release_leader(Leader, #state{writes = Writes} = S) ->
    Mine = maps:filter(fun(_Mon, {L, _, Pid}) -> L =:= Leader andalso Pid =/= none end, Writes),
    S1 = S#state{writes = maps:merge(Writes, maps:map(fun(_Mon, {L, C, _}) -> {L, C, none} end, Mine))},
    lists:foldl(fun({_, _, Pid}, Acc) -> one_written(Pid, Acc) end, S1, maps:values(Mine)).

%% The NIF may count no more (Python not started): nothing here depends on it.
written(Cost) ->
    _ = py_nif:output_written(Cost),
    ok.
