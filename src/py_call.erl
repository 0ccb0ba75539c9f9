%% @private
%% @doc Queue a request on a context and wait for its reply.
%%
%% The NIF functions return at once with a request id; the context thread
%% later sends `{Tag, Result}' (or `{Tag, {error, Reason}, Traceback}' for a
%% Python exception). A caller that gives up cancels the request, so no late
%% reply is left in its mailbox.
-module(py_call).

-export([submit_and_wait/3, submit_and_wait/4, timeout/2, wait_reply/2]).

%% @doc Calls `Submit(Res, Tag)' and waits up to `Timeout' for the reply.
%% `Res' is what the request was queued through (an env, a handle or a
%% context), which is also what cancels it.
-spec submit_and_wait(reference(), timeout(), fun((reference(), reference()) -> term())) -> term().
submit_and_wait(Res, Timeout, Submit) ->
    %% The tag is made here, next to the receive, so the compiler's
    %% ref-receive optimisation skips the rest of a long mailbox.
    Tag = make_ref(),
    Deadline = deadline(Timeout),
    case Submit(Res, Tag) of
        Id when is_integer(Id) ->
            receive
                {Tag, py_output, _Stream, Text} ->
                    %% print() while serving this call (spec §13): the rest
                    %% waits in wait_printing/4, so calls that print nothing
                    %% keep this plain receive
                    output(Text),
                    wait_printing(Res, Tag, Id, Deadline);
                {Tag, {deferred_maps, Result}} -> py_maps:finish(Result);
                {Tag, Result} -> Result;
                {Tag, Error, Traceback} -> python_error(Error, Traceback)
            after Timeout ->
                cancel(Res, Tag, Id)
            end;
        {error, _} = Error ->
            Error
    end.

%% The rest of a call that prints: each write goes to this process's group
%% leader as it comes, before the answer.
wait_printing(Res, Tag, Id, Deadline) ->
    receive
        {Tag, py_output, _Stream, Text} ->
            output(Text),
            wait_printing(Res, Tag, Id, Deadline);
        {Tag, {deferred_maps, Result}} -> py_maps:finish(Result);
        {Tag, Result} -> Result;
        {Tag, Error, Traceback} -> python_error(Error, Traceback)
    after remaining(Deadline) ->
        cancel(Res, Tag, Id)
    end.

%% Taken before the call is queued, only for a finite timeout: a call that
%% prints still ends when its timeout says.
deadline(infinity) -> infinity;
deadline(Timeout) -> erlang:monotonic_time(millisecond) + Timeout.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% Python's text, UTF-8, to the group leader; a group leader that is gone
%% (or refuses it) loses it, never the call.
output(Text) ->
    try io:put_chars(group_leader(), Text)
    catch _:_ -> ok
    end.

%% @doc As {@link submit_and_wait/3}, with the timeout taken from `Opts'
%% (`Default' when absent), which are checked before anything is queued.
-spec submit_and_wait(reference(), term(), timeout(), fun((reference(), reference()) -> term())) -> term().
submit_and_wait(Res, Opts, Default, Submit) ->
    case timeout(Opts, Default) of
        {ok, Timeout} -> submit_and_wait(Res, Timeout, Submit);
        {error, _} = Error -> Error
    end.

%% @doc The timeout in `Opts' (`Default' when absent), validated.
-spec timeout(term(), timeout()) -> {ok, timeout()} | {error, {badarg, timeout | options}}.
timeout(Opts, Default) when is_map(Opts) ->
    case maps:get(timeout, Opts, Default) of
        infinity -> {ok, infinity};
        T when is_integer(T), T >= 0 -> {ok, T};
        _ -> {error, {badarg, timeout}}
    end;
timeout(_Opts, _Default) ->
    {error, {badarg, options}}.

%% The caller gave up: stop the request, or collect its reply if it beat us.
cancel(Res, Tag, Id) ->
    case py_nif:cancel(Res, Id) of
        cancelled ->
            flush_output(Tag),
            {error, timeout};
        finished ->
            wait_reply(Tag, infinity)
    end.

%% @doc The reply to the request tagged `Tag', or `timeout'. A Python
%% exception's traceback is kept for `py:last_traceback/0'.
-spec wait_reply(reference(), timeout()) -> term() | timeout.
wait_reply(Tag, Timeout) ->
    wait_reply_until(Tag, deadline(Timeout)).

wait_reply_until(Tag, Deadline) ->
    receive
        {Tag, py_output, _Stream, Text} ->
            output(Text),
            wait_reply_until(Tag, Deadline);
        {Tag, {deferred_maps, Result}} -> py_maps:finish(Result);
        {Tag, Result} -> Result;
        {Tag, Error, Traceback} -> python_error(Error, Traceback)
    after remaining(Deadline) ->
        timeout
    end.

%% What a cancelled call wrote before it was cancelled: it still goes out
%% (it was printed); a cancelled call writes nothing more.
flush_output(Tag) ->
    receive
        {Tag, py_output, _Stream, Text} ->
            output(Text),
            flush_output(Tag)
    after 0 ->
        ok
    end.

python_error(Error, Traceback) ->
    put(py_last_traceback, Traceback),
    Error.
