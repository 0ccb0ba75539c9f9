%% @doc Passes on what the NIF's threads cannot send themselves, in the
%% order they sent it:
%%
%% - answers and stream messages holding maps only a scheduler may build
%%   (OTP 25), and `erlang.send' to a remote pid or with such maps;
%% - Python's `sys.stdout'/`sys.stderr' writes made for a process that is
%%   not waiting in receive for them (spec §13): a spawn_call, cast, stream,
%%   event-loop job or task. They go to that process's group leader (the
%%   VM's `user' once it has exited); the request's answer then comes here
%%   too, and goes on after its text was handed over.
%%
%% It never waits for a group leader: each write is an io request whose
%% reply (or the group leader's exit) comes back as a message, and the NIF
%% counts the bytes not yet written, dropping output past a bound instead
%% of growing this mailbox without end.
-module(py_relay).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
%% State: monitor (and io request tag) => bytes it stands for.
-spec init([]) -> {ok, #{reference() => non_neg_integer()}}.
init([]) ->
    ok = py_nif:output_reset(),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Request, _From, Writes) ->
    {reply, {error, unknown_call}, Writes}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, Writes) ->
    {noreply, Writes}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'$py_output', Pid, _Stream, Text, Cost}, Writes) ->
    case group_leader_of(Pid) of
        {ok, Leader} ->
            Mon = monitor(process, Leader),
            Leader ! {io_request, self(), Mon, {put_chars, unicode, Text}},
            {noreply, Writes#{Mon => Cost}};
        error ->
            written(Cost),
            {noreply, Writes}
    end;
handle_info({io_reply, Mon, _}, Writes) ->
    {noreply, write_done(Mon, Writes)};
handle_info({'DOWN', Mon, process, _, _}, Writes) ->
    {noreply, write_done(Mon, Writes)};
handle_info({'$py_forward', To, Message}, Writes) ->
    To ! Message,
    {noreply, Writes};
handle_info({'$py_response', Caller, Ref, Result}, Writes) ->
    Caller ! {py_response, Ref, case finish(Result) of
                                    {ok, Built} -> Built;
                                    {error, _} = Error -> Error
                                end},
    {noreply, Writes};
handle_info({'$py_stream', Ref, _Owner, Message}, Writes) ->
    %% the NIF passes it on unless the stream was cancelled meanwhile
    _ = case finish(Message) of
            {ok, Built} ->
                case py_nif:stream_forward(Ref, Built) of
                    ok -> ok;
                    {error, Refused} -> py_nif:stream_fail(Ref, Refused)
                end;
            {error, Reason} ->
                py_nif:stream_fail(Ref, Reason)
        end,
    {noreply, Writes};
handle_info({'$py_send', To, Term}, Writes) ->
    case finish(Term) of
        {ok, Message} ->
            To ! Message;
        {error, Reason} ->
            logger:error("erlang_python: erlang.send to ~p dropped: ~p", [To, Reason])
    end,
    {noreply, Writes};
handle_info(_Msg, Writes) ->
    {noreply, Writes}.

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

write_done(Mon, Writes) ->
    case maps:take(Mon, Writes) of
        {Cost, Rest} ->
            demonitor(Mon, [flush]),
            written(Cost),
            Rest;
        error ->
            Writes
    end.

written(Cost) ->
    ok = py_nif:output_written(Cost).
