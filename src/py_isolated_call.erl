%% @private
%% @doc Requests to an isolated context (spec §11), made and awaited by the
%% calling process, as the NIF's are.
%%
%% The caller encodes its request ({@link py_nif:encode_request/1}: the size
%% rule of every request), tells the context process where the answer goes
%% (the alias of a monitor of that process), writes the request to the
%% worker's port itself, and waits in `receive'. The answer is decoded here,
%% in the caller. The monitor answers for a context that dies meanwhile:
%% `{error, {context_crashed, Why}}'. A caller that gives up drops the alias,
%% so nothing reaches its mailbox afterwards.
%%
%% Envs and handles are release tokens ({@link py_nif:release_token/2}):
%% the worker drops the namespace or the object once the VM has collected
%% every copy of the token, as it does an in-process env or handle.
-module(py_isolated_call).

-export([env_new/1, is_env/1, decode/1, exception_name/1, request/3, spawn_call/2, cast/2, context_request/4, handle_request/3, is_handle/1, info/1, interrupt/1,
         with_handles/3, drop_handles/3, stream_request/2, down_reason/1]).

-export([keep/1]).

-export_type([env/0, ctx_ref/0]).

-record(py_isolated_env, {ctx :: pid(), port :: port(), id :: pos_integer(), token :: reference(), load :: load()}).

-opaque env() :: #py_isolated_env{}.
-type ctx_ref() :: {py_isolated, pid(), port(), reference(), load()}.
%% Requests sent and not answered, and calls refused, counted by callers
%% and the context (py_isolated) alike; with the context's max_queue.
-type load() :: {atomics:atomics_ref(), pos_integer()}.
-type op() :: {exec, term()} | {eval, term(), term()} | {call | call_main, term(), term(), term(), term()}
            | {getattr, reference(), term()} | {call_method, reference(), term(), term(), term()}
            | {to_term, reference()}.

%% Frame kinds: see priv/python/isolated/erlang_python_isolated.py.
-define(TO_REQUEST, 1).
-define(TO_DROP, 4).
-define(TO_BIND, 7).

%% @doc A new env on the isolated context `CtxRef' (its registry row).
-spec env_new(ctx_ref()) -> {ok, env()} | {error, term()}.
env_new({py_isolated, Ctx, Port, _Marker, Load}) ->
    Id = erlang:unique_integer([positive]),
    case py_nif:release_token(Ctx, {py_isolated_drop_env, Id}) of
        Token when is_reference(Token) ->
            {ok, #py_isolated_env{ctx = Ctx, port = Port, id = Id, token = Token, load = Load}};
        {error, _} = Error ->
            Error
    end.

%% @doc Whether `Term' is an env of an isolated context.
-spec is_env(term()) -> boolean().
is_env(Term) ->
    is_record(Term, py_isolated_env).

%% @doc Runs `Op' in `Env' and waits up to `Timeout' for the answer.
-spec request(env(), timeout(), op()) -> term().
request(#py_isolated_env{ctx = Ctx, port = Port, id = EnvId, token = Token, load = Load}, Timeout, Op) ->
    Result = submit({Ctx, Port, Load}, EnvId, Timeout, Op),
    %% the env must outlive its request: the worker would otherwise be told
    %% to drop it while the request is still to run
    _ = erlang:phash2(Token),
    Result;
request(_Env, _Timeout, _Op) ->
    {error, {badarg, env}}.

%% @doc py:spawn_call on an isolated context: a process of its own makes
%% the call for the caller (erlang.self() is the caller, output goes to its
%% group leader) and sends `{py_response, Ref, Result}', as the NIF does.
-spec spawn_call(env(), op()) -> py_nif:call_ref() | {error, term()}.
spawn_call(Env, Op0) ->
    case checked(Op0) of
        {ok, Op} -> spawn_checked(Env, Op);
        {error, _} = Error -> Error
    end.

spawn_checked(Env, Op) ->
    Ref = py_nif:async_new(),
    Sent = on_behalf(Env, Op, fun(Caller, Result) ->
                      case {Result, get(py_last_traceback)} of
                          {{error, {_, _}}, Traceback} when is_binary(Traceback) ->
                              ok = py_nif:async_set_traceback(Ref, Traceback);
                          _ ->
                              ok
                      end,
                      Caller ! {py_response, Ref, Result}
              end),
    _ = case Sent of
            ok -> ok;
            {error, _} = Refused -> self() ! {py_response, Ref, Refused}  % as the NIF: through await
        end,
    Ref.

%% @doc py:cast on an isolated context: made by a process of its own; a
%% failure is logged as the NIF logs it (logger, `erlang_python.cast').
-spec cast(env(), op()) -> ok | {error, term()}.
cast(Env, Op0) ->
    case checked(Op0) of
        {ok, Op} -> cast_checked(Env, Op);
        {error, _} = Error -> Error
    end.

cast_checked(Env, {_, Module, Function, _, _} = Op) ->
    on_behalf(Env, Op, fun(Caller, Result) ->
                      case Result of
                          {error, Reason} ->
                              Head = io_lib:format("py:cast of ~0p:~0p failed: ~0p", [Module, Function, Reason]),
                              Text = case {Reason, get(py_last_traceback)} of
                                         {{_, _}, Traceback} when is_binary(Traceback) -> [Head, "\n", Traceback];
                                         _ -> Head
                                     end,
                              Record = {py_log, 40, <<"erlang_python.cast">>, iolist_to_binary(Text),
                                        #{file => undefined, line => 0, function => undefined, caller => Caller}},
                              %% dropped if py_logger is not running, as the NIF drops it
                              case whereis(py_logger) of
                                  undefined -> ok;
                                  Logger -> Logger ! Record, ok
                              end;
                          _ ->
                              ok
                      end
              end).

%% The caller writes the request itself, so that its requests run in the
%% order it made them, as the NIF queues them; a process of its own (with
%% the caller's group leader, for what the request prints) waits for the
%% answer and gives it to `Then(Caller, Result)'. A request refused before
%% it was sent (overloaded) is the caller's to answer.
on_behalf(#py_isolated_env{ctx = Ctx, port = Port, id = EnvId, load = Load} = Env, Op, Then) ->
    Caller = self(),
    Leader = group_leader(),
    Waiter = spawn(fun() ->
                           group_leader(Leader, self()),
                           Mon = monitor(process, Ctx),
                           receive
                               {Caller, Id} ->
                                   Result = wait(Ctx, Port, self(), Mon, Id, infinity),
                                   %% the handles in Op outlive the request
                                   ?MODULE:keep(Op),
                                   Then(Caller, Result)
                           end
                   end),
    Sent = send_request({Ctx, Port, Load}, EnvId, Op, Caller, {Waiter, Caller}),
    keep(Env),
    case Sent of
        {ok, Id} -> Waiter ! {Caller, Id}, ok;
        {error, _} = Error -> exit(Waiter, kill), Error
    end;
on_behalf(_Env, _Op, _Then) ->
    {error, {badarg, env}}.

%% @doc A stream's first request (py:stream_start/4 on an isolated context):
%% `Op', a call, checked and encoded as {@link request/3} would send it, with
%% the context it goes to and the erlang.call it is made in (0: none).
-spec stream_request(env(), op()) ->
          {ok, {pid(), non_neg_integer(), binary()}} | {error, term()}.
stream_request(#py_isolated_env{ctx = Ctx, id = EnvId}, Op0) ->
    case checked(Op0) of
        {ok, Op} ->
            case py_nif:encode_request({EnvId, self(), Op}) of
                Frame when is_binary(Frame) -> {ok, {Ctx, parent(Ctx), Frame}};
                {error, _} = Error -> Error
            end;
        {error, _} = Error ->
            Error
    end;
stream_request(_Env, _Op) ->
    {error, {badarg, env}}.

%% @doc `Op' on the context `CtxRef' in `Env', or in the context's shared
%% namespace for `undefined' (py_nif:context_exec/eval).
-spec context_request(ctx_ref(), env() | undefined | term(), timeout(), op()) -> term().
context_request({py_isolated, Ctx, Port, _, Load}, undefined, Timeout, Op) ->
    submit({Ctx, Port, Load}, 0, Timeout, Op);
context_request({py_isolated, Ctx, _, _, _}, #py_isolated_env{ctx = Ctx} = Env, Timeout, Op) ->
    request(Env, Timeout, Op);
context_request({py_isolated, _, _, _, _}, _Env, _Timeout, _Op) ->
    {error, env_wrong_interpreter}.

%% @doc `Op' on the object behind an isolated context's handle, or
%% `not_isolated' for any other term.
-spec handle_request(term(), timeout(), op()) -> term() | not_isolated.
handle_request(Handle, Timeout, Op) ->
    case py_nif:release_token_info(Handle) of
        {Ctx, {py_isolated_drop, _}} ->
            case py_context_registry:lookup(Ctx) of
                {ok, {py_isolated, Ctx, Port, _, Load}} -> submit({Ctx, Port, Load}, 0, Timeout, Op);
                _ -> {error, context_not_running}
            end;
        _ ->
            not_isolated
    end.

%% @doc Whether `Term' is a handle of an isolated context.
-spec is_handle(term()) -> boolean().
is_handle(Term) ->
    is_reference(Term) andalso
        case py_nif:release_token_info(Term) of
            {_, {py_isolated_drop, _}} -> true;
            _ -> false
        end.

%% @doc What the context is doing, as {@link py_context:info/1} says.
-spec info(ctx_ref()) -> {ok, map()} | {error, term()}.
info({py_isolated, Ctx, _, _, _}) ->
    try gen_server:call(Ctx, info, infinity)
    catch exit:_ -> {error, context_not_running}
    end.

%% @doc Interrupts what the context runs (py:interrupt/1).
-spec interrupt(ctx_ref()) -> ok | not_running | {error, context_not_running}.
interrupt({py_isolated, Ctx, _, _, _}) ->
    try gen_server:call(Ctx, interrupt, infinity)
    catch exit:_ -> {error, context_not_running}
    end.

%% @private
%% A remote call the compiler cannot drop: what it is given stays alive
%% until here.
-spec keep(term()) -> ok.
keep(_) ->
    ok.

%% ---------------------------------------------------------------------------

submit(Target, EnvId, Timeout, Op0) ->
    case checked(Op0) of
        {ok, Op} -> submit_checked(Target, EnvId, Timeout, Op);
        {error, _} = Error -> Error
    end.

%% The arguments the NIF checks before it queues a request, checked the
%% same way, with the same errors; the atom '__main__' (the caller's env,
%% not the module of that name) becomes an op of its own.
checked({exec, Code} = Op) when is_binary(Code) -> {ok, Op};
checked({exec, _}) -> {error, {badarg, code}};
checked({eval, Expr, Locals} = Op) when is_binary(Expr), is_map(Locals) -> {ok, Op};
checked({eval, Expr, _}) when is_binary(Expr) -> {error, {badarg, locals}};
checked({eval, _, _}) -> {error, {badarg, expr}};
checked({call, M, F, A, K}) ->
    case {is_name(M), is_name(F), is_proper_list(A), is_map(K)} of
        {false, _, _, _} -> {error, {badarg, module}};
        {_, false, _, _} -> {error, {badarg, function}};
        {_, _, false, _} -> {error, {badarg, args}};
        {_, _, _, false} -> {error, {badarg, kwargs}};
        _ when M =:= '__main__' -> {ok, {call_main, M, F, A, K}};
        _ -> {ok, {call, M, F, A, K}}
    end;
checked({call_method, H, Name, A, K} = Op) ->
    case {is_name(Name), is_proper_list(A), is_map(K)} of
        {false, _, _} -> {error, {badarg, name}};
        {_, false, _} -> {error, {badarg, args}};
        {_, _, false} -> {error, {badarg, kwargs}};
        _ when is_reference(H) -> {ok, Op}
    end;
checked({getattr, _, Name} = Op) ->
    case is_name(Name) of
        true -> {ok, Op};
        false -> {error, {badarg, name}}
    end;
checked(Op) ->
    {ok, Op}.

is_name(N) -> is_atom(N) orelse is_binary(N).

is_proper_list([]) -> true;
is_proper_list([_ | T]) -> is_proper_list(T);
is_proper_list(_) -> false.

submit_checked({Ctx, Port, _} = Target, EnvId, Timeout, Op) ->
    Alias = monitor(process, Ctx, [{alias, demonitor}]),
    case send_request(Target, EnvId, Op, self(), Alias) of
        {ok, Id} ->
            Result = wait(Ctx, Port, Alias, Alias, Id, deadline(Timeout)),
            %% the handles in Op must outlive the request: were they
            %% collected first, the worker would be told to drop them
            ?MODULE:keep(Op),
            Result;
        {error, _} = Error ->
            demonitor(Alias, [flush]),
            Error
    end.

%% Writes the request to the worker; its answer goes to `To' (an alias),
%% or `{Waiter, For}': to the process Waiter, which waits for it on behalf
%% of For, whose group leader py_relay writes its output at. The answer is
%% `{To or Waiter, Kind, Binary}'.
send_request({Ctx, Port, Load}, EnvId, Op, Caller, To) ->
    case py_nif:encode_request({EnvId, Caller, Op}) of
        Frame when is_binary(Frame) ->
            admitted(Load, parent(Ctx), fun() -> send_frame(Ctx, Port, Frame, To) end);
        {error, _} = Error ->
            Error
    end.

%% Past the context's max_queue, a request is refused at once
%% (`overloaded'), unless an Erlang function Python waits for makes it:
%% refused, that call could never finish. One request may be running, so
%% the bound is on requests sent and not answered, less one.
admitted({Load, Max}, Parent, Send) ->
    case atomics:add_get(Load, 1, 1) > Max + 1 andalso Parent =:= 0 of
        true ->
            atomics:sub(Load, 1, 1),
            atomics:add(Load, 2, 1),
            {error, overloaded};
        false ->
            Send()
    end.

send_frame(Ctx, Port, Frame, To) ->
    Id = erlang:unique_integer([positive]),
    Ctx ! case To of
              {Waiter, For} -> {py_isolated_request, Id, Waiter, For};
              Alias -> {py_isolated_request, Id, Alias}
          end,
    _ = (catch port_command(Port, [<<?TO_REQUEST, Id:64, (parent(Ctx)):64>>, Frame])),
    %% (a port that has closed: the context is going, and its monitor says
    %% why)
    {ok, Id}.

%% Made by an Erlang function Python called on Ctx: the erlang.call's id.
%% The request runs now, nested in that call; other requests wait their turn.
parent(Ctx) ->
    case get(py_isolated_parent) of
        {Ctx, CallId} -> CallId;
        _ -> 0
    end.

%% The answer to request Id, tagged `To'; `Mon' watches the context.
wait(Ctx, Port, To, Mon, Id, Deadline) ->
    receive
        {To, Kind, Bin} when Kind =:= result; Kind =:= result_with_handles; Kind =:= failure ->
            demonitor(Mon, [flush]),
            answer(Ctx, Port, Kind, Bin);
        {To, py_output, _Stream, Text} ->
            output(Text),
            wait(Ctx, Port, To, Mon, Id, Deadline);
        {'DOWN', Mon, process, _, Reason} ->
            {error, down_reason(Reason)}
    after remaining(Deadline) ->
        Ctx ! {py_isolated_cancel, Id},
        demonitor(Mon, [flush]),
        %% an answer that came before the alias went is still the answer
        receive
            {To, Kind, Bin} when Kind =:= result; Kind =:= result_with_handles; Kind =:= failure ->
                answer(Ctx, Port, Kind, Bin)
        after 0 ->
            flush_output(To),
            {error, timeout}
        end
    end.

answer(Ctx, Port, Kind, Bin) ->
    case {Kind, decode(Bin)} of
        {_, {error, _} = Error} ->
            Error;
        {result, {ok, Term}} ->
            Term;
        {result_with_handles, {ok, Term}} ->
            with_handles(Ctx, Port, Term);
        {failure, {ok, {{error, {Type, Message}}, Traceback}}} ->
            put(py_last_traceback, Traceback),
            {error, {exception_name(Type), Message}}
    end.

%% @doc A Python exception's class name: an atom if it exists or the
%% budget of new atoms made for Python allows, else the name as a binary.
-spec exception_name(binary()) -> atom() | binary().
exception_name(Name) ->
    case py_nif:atoms_from_python([Name]) of
        ok -> binary_to_existing_atom(Name, utf8);
        {error, _} -> Name
    end.

%% @doc A term from the worker. The atoms it names that the worker has not
%% seen the VM use come in front of it, and are made within the budget of
%% new atoms made for Python that every interpreter shares: Python code in
%% a worker cannot fill the atom table any more than in-process.
-spec decode(binary()) -> {ok, term()} | {error, term()}.
decode(<<131, _/binary>> = Bin) ->
    safe_decode(Bin);
decode(<<0, Wrapped/binary>>) ->
    case safe_decode(Wrapped) of
        {ok, {Names, Inner}} when is_list(Names), is_binary(Inner) ->
            case py_nif:atoms_from_python(Names) of
                ok -> safe_decode(Inner);
                {error, _} = Error -> Error
            end;
        _ ->
            {error, {badarg, <<"an isolated worker's answer is not a term">>}}
    end;
decode(_) ->
    {error, {badarg, <<"an isolated worker's answer is not a term">>}}.

safe_decode(Bin) ->
    try
        {ok, binary_to_term(Bin, [safe])}
    catch
        error:badarg ->
            {error, {badarg, <<"an isolated worker's answer is not a term, or names an atom not made">>}}
    end.

%% @doc What a caller hears of a context that went down with `Reason'.
-spec down_reason(term()) -> term().
down_reason({context_crashed, _} = Crash) -> Crash;
down_reason(noproc) -> context_not_running;
down_reason(normal) -> context_stopped;
down_reason(shutdown) -> context_stopped;
down_reason({shutdown, _}) -> context_stopped;
down_reason(Other) -> {context_crashed, Other}.

deadline(infinity) -> infinity;
deadline(Timeout) -> erlang:monotonic_time(millisecond) + Timeout.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

output(Text) ->
    try io:put_chars(group_leader(), Text)
    catch _:_ -> ok
    end.

flush_output(Alias) ->
    receive
        {Alias, py_output, _Stream, Text} ->
            output(Text),
            flush_output(Alias)
    after 0 ->
        ok
    end.

%% @doc `Term' from the worker with its objects that have no Erlang form,
%% which came as `{Marker, HandleId}', made handles: each becomes a release
%% token, which the worker learns to know as that object.
-spec with_handles(pid(), port(), term()) -> term().
with_handles(Ctx, Port, Result) ->
    case py_context_registry:lookup(Ctx) of
        {ok, {py_isolated, Ctx, Port, Marker, _}} ->
            {Out, _} = replace(Result, Marker, Ctx, Port, #{}),
            Out;
        _ ->
            {error, context_not_running}
    end.

replace({Marker, Id}, Marker, Ctx, Port, Made) when is_integer(Id) ->
    case Made of
        #{Id := Token} ->
            {Token, Made};
        _ ->
            Token = py_nif:release_token(Ctx, {py_isolated_drop, Id}),
            catch port_command(Port, [<<?TO_BIND, Id:64>>, term_to_binary(Token)]),
            {Token, Made#{Id => Token}}
    end;
replace(List, Marker, Ctx, Port, Made) when is_list(List) ->
    lists:mapfoldl(fun(X, M) -> replace(X, Marker, Ctx, Port, M) end, Made, List);
replace(Tuple, Marker, Ctx, Port, Made) when is_tuple(Tuple) ->
    {Items, M} = replace(tuple_to_list(Tuple), Marker, Ctx, Port, Made),
    {list_to_tuple(Items), M};
replace(Map, Marker, Ctx, Port, Made) when is_map(Map) ->
    {Pairs, M} = replace(maps:to_list(Map), Marker, Ctx, Port, Made),
    {maps:from_list(Pairs), M};
replace(Other, _Marker, _Ctx, _Port, Made) ->
    {Other, Made}.

%% @doc Tells the worker to drop the handles in an answer nobody takes
%% (its caller gave up, or its stream was cancelled).
-spec drop_handles(port(), binary(), reference()) -> ok.
drop_handles(Port, Payload, Marker) ->
    case decode(Payload) of
        {ok, Term} -> lists:foreach(fun(Id) -> port_command(Port, <<?TO_DROP, Id:64>>) end,
                                    handle_ids(Term, Marker, []));
        {error, _} -> ok
    end.

handle_ids({Marker, Id}, Marker, Acc) when is_integer(Id) -> [Id | Acc];
handle_ids(List, Marker, Acc) when is_list(List) -> lists:foldl(fun(X, A) -> handle_ids(X, Marker, A) end, Acc, List);
handle_ids(Tuple, Marker, Acc) when is_tuple(Tuple) -> handle_ids(tuple_to_list(Tuple), Marker, Acc);
handle_ids(Map, Marker, Acc) when is_map(Map) -> handle_ids(maps:to_list(Map), Marker, Acc);
handle_ids(_, _, Acc) -> Acc.
