%% Spec §13: what Python writes to sys.stdout and sys.stderr while serving
%% a call reaches the calling process's group leader, before the call's
%% answer; output from threads serving nobody goes where it went before.
-module(py_output_SUITE).
-include_lib("common_test/include/ct.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, worker}, {group, subinterp}, {group, owngil}, {group, isolated}, {group, once}].

groups() ->
    Cases = [print_reaches_the_group_leader, output_comes_before_the_answer, partial_lines_stderr_flush,
             huge_output_is_bounded, text_that_is_not_utf8, timed_out_call_leaves_nothing,
             threads_serving_nobody, printing_nothing_sends_nothing,
             async_calls_print_before_their_answer, cast_prints_at_the_group_leader,
             streams_print_before_they_end, callbacks_print_where_their_caller_does,
             caller_gone_before_the_output],
    [{worker, [], Cases}, {subinterp, [], Cases}, {owngil, [], Cases}, {isolated, [], Cases},
     {once, [], [ct_captures_python_output, event_loop_output_reaches_the_group_leader,
                 relayed_output_is_bounded_at_a_stuck_group_leader, an_answer_waits_for_its_text,
                 relay_survives_a_leader_catching_up]}].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_group(once, Config) ->
    Config;
init_per_group(Mode, Config) ->
    py_test_util:start_group_context({output, Mode}, Mode, Config).

end_per_group(_Group, Config) ->
    py_test_util:stop_group_context(Config).

end_per_testcase(_Case, _Config) ->
    py_test_util:flush(),
    ok.

ctx(Config) -> ?config(ctx, Config).

with_group_leader(Fun) ->
    py_test_util:with_group_leader(Fun).

%% ---------------------------------------------------------------------------

print_reaches_the_group_leader(Config) ->
    Ctx = ctx(Config),
    {ok, <<"hello from python\n">>} = with_group_leader(fun() -> py:exec(Ctx, <<"print('hello from python')">>) end),
    {{ok, 4.0}, <<"sqrt!\n">>} =
        with_group_leader(fun() ->
                                  ok = py:exec(Ctx, <<"import math\ndef loud_sqrt(x):\n    print('sqrt!')\n    return math.sqrt(x)\n">>),
                                  py:call(Ctx, '__main__', loud_sqrt, [16])
                          end),
    {{ok, none}, <<"eval\n">>} = with_group_leader(fun() -> py:eval(Ctx, <<"print('eval')">>) end),
    ok.

%% Python's lines and the caller's own, interleaved, arrive in order.
output_comes_before_the_answer(Config) ->
    Ctx = ctx(Config),
    {ok, <<"1 python\n2 erlang\n3 python\n4 erlang\n">>} =
        with_group_leader(fun() ->
                                  ok = py:exec(Ctx, <<"print('1 python')">>),
                                  io:format("2 erlang~n"),
                                  ok = py:exec(Ctx, <<"print('3 python')">>),
                                  io:format("4 erlang~n")
                          end),
    ok.

partial_lines_stderr_flush(Config) ->
    Ctx = ctx(Config),
    Code = <<"
import sys
print('no newline', end='')
sys.stdout.flush()
print(' ... then the rest')
print('to stderr', file=sys.stderr)
sys.stdout.writelines(['a', 'b', '\\n'])
print('unicode: é ✓ 😀', flush=True)
"/utf8>>,
    {ok, <<"no newline ... then the rest\nto stderr\nab\nunicode: é ✓ 😀\n"/utf8>>} =
        with_group_leader(fun() -> py:exec(Ctx, Code) end),
    ok.

%% Past 16 MiB in one call the rest is dropped with a line saying so; the
%% call itself answers as usual, and the next call prints again.
huge_output_is_bounded(Config) ->
    Ctx = ctx(Config),
    {ok, Text} = with_group_leader(fun() ->
                                           py:exec(Ctx, <<"line = 'x' * 1023\nfor _ in range(20 * 1024):\n    print(line)\n">>)
                                   end),
    %% the bound counts each message's own cost too (two per print here)
    true = byte_size(Text) =< 16 * 1024 * 1024 + 100,
    true = byte_size(Text) >= 8 * 1024 * 1024,
    {_, _} = binary:match(Text, <<"output of this call past 16 MiB dropped">>),
    {ok, <<"again\n">>} = with_group_leader(fun() -> py:exec(Ctx, <<"print('again')">>) end),
    ok.

%% Lone surrogates (from bytes decoded with surrogateescape) have no UTF-8:
%% they arrive escaped. bytes print as their repr, as in Python.
text_that_is_not_utf8(Config) ->
    Ctx = ctx(Config),
    {ok, Text} = with_group_leader(fun() ->
                                           py:exec(Ctx, <<"import sys\nsys.stdout.write(b'ok \\xff\\xfe'.decode('utf-8', 'surrogateescape'))\nprint()\nprint(b'\\x00\\xff')\n">>)
                                   end),
    <<"ok \\udcff\\udcfe\nb'\\x00\\xff'\n">> = Text,
    {error, {'TypeError', _}} = py:exec(Ctx, <<"import sys\nsys.stdout.write(b'bytes')">>),
    ok.

%% A call that timed out: what it printed before is shown, nothing it
%% prints afterwards reaches the caller, and no message is left behind.
timed_out_call_leaves_nothing(Config) ->
    Ctx = ctx(Config),
    {Result, Text} =
        with_group_leader(fun() ->
                                  R = py:exec(Ctx, <<"import time\nprint('before')\nwhile True:\n    print('tick')\n    time.sleep(0.001)\n">>,
                                              #{timeout => 50}),
                                  {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
                                  {messages, Left} = process_info(self(), messages),
                                  {R, Left}
                          end),
    {{error, timeout}, []} = Result,
    <<"before\n", _/binary>> = Text,
    ok.

%% Threads of Python's own serve no call: their output goes to the stream
%% the interpreter had (the VM's standard output), not to any caller.
threads_serving_nobody(Config) ->
    Ctx = ctx(Config),
    {ok, <<"caller\n">>} =
        with_group_leader(fun() ->
                                  py:exec(Ctx, <<"
import threading
t = threading.Thread(target=lambda: print('from a thread of its own (expected on the VM stdout)'))
t.start()
t.join()
print('caller')
">>)
                          end),
    ok.

printing_nothing_sends_nothing(Config) ->
    Ctx = ctx(Config),
    {ok, <<>>} = with_group_leader(fun() -> {ok, 3} = py:eval(Ctx, <<"1 + 2">>), ok end),
    ok.

%% The usual way a test looks at output works on Python's too.
ct_captures_python_output(_Config) ->
    ct:capture_start(),
    ok = py:exec(<<"print('captured by ct')">>),
    ct:capture_stop(),
    %% print writes the text and its newline apart; the VM may print
    %% reports of its own meanwhile
    {match, _} = re:run(unicode:characters_to_binary(ct:capture_get()), "captured by ct.*\n", [dotall]),
    %% calls that do not wait: the group leader has written the text (and
    %% so ct has it) by the time the answer comes
    [begin
         ct:capture_start(),
         {ok, _} = Fun(),
         ct:capture_stop(),
         {match, _} = re:run(unicode:characters_to_binary(ct:capture_get()), Text)
     end || {Text, Fun} <- [{"from a spawn_call", fun() -> py:await(py:spawn_call(builtins, print, [<<"from a spawn_call">>])) end},
                            {"from a stream", fun() ->
                                                      ok = py:exec(<<"def loud():\n    print('from a stream')\n    yield 1\n">>),
                                                      py:stream('__main__', loud, [])
                                              end},
                            {"from the event loop", fun() -> py_event_loop:run(builtins, print, [<<"from the event loop">>]) end}]],
    ok.

%% ---------------------------------------------------------------------------
%% Callers that do not wait in receive: py_relay writes for them

%% spawn_call's text is at the group leader by the time its answer is
%% taken, with py:await or in a plain receive (handle_info).
async_calls_print_before_their_answer(Config) ->
    Ctx = ctx(Config),
    Define = fun() ->
                     ok = py:exec(Ctx, <<"def loud_add(a, b):\n    print('adding', a, b)\n    return a + b\n"
                                         "def loud_fail():\n    print('about to fail')\n    raise ValueError('no')\n">>)
             end,
    {{ok, 5}, <<"adding 2 3\n">>} =
        with_group_leader(fun() -> Define(), py:await(py:spawn_call(Ctx, '__main__', loud_add, [2, 3], #{})) end),
    {{ok, 9}, <<"adding 4 5\n">>} =
        with_group_leader(fun() ->
                                  Define(),
                                  Ref = py:spawn_call(Ctx, '__main__', loud_add, [4, 5], #{}),
                                  receive {py_response, Ref, Result} -> Result end
                          end),
    {{error, {'ValueError', <<"no">>}}, <<"about to fail\n">>} =
        with_group_leader(fun() -> Define(), py:await(py:spawn_call(Ctx, '__main__', loud_fail, [], #{})) end),
    %% 100 at once, each answer after its own text
    {Results, Text} =
        with_group_leader(fun() ->
                                  Define(),
                                  Refs = [py:spawn_call(Ctx, '__main__', loud_add, [I, 0], #{}) || I <- lists:seq(1, 100)],
                                  [py:await(R) || R <- Refs]
                          end),
    Results = [{ok, I} || I <- lists:seq(1, 100)],
    Text = iolist_to_binary([io_lib:format("adding ~b 0~n", [I]) || I <- lists:seq(1, 100)]),
    {messages, []} = process_info(self(), messages),
    ok.

%% A cast answers nobody; its text still reaches the group leader.
cast_prints_at_the_group_leader(Config) ->
    Ctx = ctx(Config),
    Leader = py_test_util:collecting_leader(),
    Self = self(),
    Caster = spawn_link(fun() ->
                                group_leader(Leader, self()),
                                ok = py:cast(Ctx, builtins, print, [<<"cast output">>]),
                                Self ! {self(), done},
                                receive stop -> ok end
                        end),
    receive {Caster, done} -> ok end,
    true = py_test_util:wait_until(fun() -> py_test_util:collected(Leader) =:= <<"cast output\n">> end),
    Caster ! stop,
    ok.

%% What a generator prints is at the owner's group leader before the
%% stream's `done' (py:stream has it all when it returns), window or not.
streams_print_before_they_end(Config) ->
    Ctx = ctx(Config),
    Define = fun() ->
                     ok = py:exec(Ctx, <<"def loud_gen(n):\n    for i in range(n):\n        print('yield', i)\n"
                                         "        yield i\n    print('finally done')\n">>)
             end,
    Expected = <<"yield 0\nyield 1\nyield 2\nfinally done\n">>,
    {{ok, [0, 1, 2]}, Expected} =
        with_group_leader(fun() -> Define(), py:stream(Ctx, '__main__', loud_gen, [3], #{}) end),
    {[0, 1, 2], Expected} =
        with_group_leader(fun() ->
                                  Define(),
                                  {ok, Ref} = py:stream_start('__main__', loud_gen, [3], #{ctx => Ctx, window => 1}),
                                  take_acked(Ref, [])
                          end),
    ok.

take_acked(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, Item}} ->
            ok = py:stream_ack(Ref),
            take_acked(Ref, [Item | Acc]);
        {py_stream, Ref, done} ->
            lists:reverse(Acc)
    end.

%% An Erlang function Python calls runs with its caller's group leader:
%% what it prints, and what Python prints in calls it makes, shows there.
callbacks_print_where_their_caller_does(Config) ->
    Ctx = ctx(Config),
    ok = py:register_function(output_suite_shout,
                              fun([Text]) ->
                                      io:format("erlang: ~s~n", [Text]),
                                      {ok, none} = py:eval(Ctx, <<"print('nested python')">>),
                                      ok
                              end),
    %% The function's process writes its own text, the waiting caller the
    %% text Python printed before the call: two writers to one group leader,
    %% so the function's line can land before the caller's last write (print
    %% writes 'python first' and its newline apart). Everything else is in
    %% order: the nested call's text, then what Python prints after.
    {{ok, <<"ok">>}, Text} =
        with_group_leader(fun() ->
                                  py:eval(Ctx, <<"(print('python first'), __import__('erlang').call('output_suite_shout', 'hey'), "
                                                 "print('python last'))[1]">>)
                          end),
    {match, _} = re:run(Text, <<"erlang: hey\n.*nested python\npython last\n$">>, [dotall]),
    <<"python first\nnested python\npython last\n">> = binary:replace(Text, <<"erlang: hey\n">>, <<>>),
    ok = py:unregister_function(output_suite_shout),
    ok.

%% Output for a process that has exited goes to the VM's standard output;
%% nothing breaks.
caller_gone_before_the_output(Config) ->
    Ctx = ctx(Config),
    Gate = py_test_util:gate(Config, Ctx),
    ok = py:exec(Ctx, <<"import test_gate\ndef late_print(gate):\n    test_gate.wait(gate)\n"
                        "    print('for a caller gone (expected on the VM stdout)')\n">>),
    {Caller, Mon} = spawn_monitor(fun() ->
                                          ok = py:cast(Ctx, '__main__', late_print, [Gate]),
                                          _ = py:spawn_call(Ctx, '__main__', late_print, [Gate], #{})
                                  end),
    receive {'DOWN', Mon, process, Caller, normal} -> ok end,
    ok = py_test_util:open_gate(Gate),
    {{ok, 2}, <<>>} = with_group_leader(fun() -> py:eval(Ctx, <<"1 + 1">>) end),
    true = is_pid(whereis(py_relay)),
    ok.

%% Event-loop jobs and tasks print where the process they run for does;
%% a spawned task's text arrives though nobody waits for it, and leaves
%% no message in the spawner's mailbox.
event_loop_output_reaches_the_group_leader(_Config) ->
    {{ok, none}, <<"from the loop\n">>} =
        with_group_leader(fun() -> py_event_loop:run(builtins, print, [<<"from the loop">>]) end),
    {ok, <<"loop exec\n">>} =
        with_group_leader(fun() ->
                                  {ok, Loop} = py_event_loop:get_loop(),
                                  py_nif:event_loop_exec(py_event_loop:get_nif_ref(Loop), <<"print('loop exec')">>)
                          end),
    {{ok, 7}, <<"sleeping 7\nwoke 7\n">>} =
        with_group_leader(fun() ->
                                  ok = py_event_loop_exec(<<"import asyncio\nasync def loud_sleep(n):\n    print('sleeping', n)\n"
                                                            "    await asyncio.sleep(0)\n    print('woke', n)\n    return n\n">>),
                                  py_event_loop:run('__main__', loud_sleep, [7])
                          end),
    Leader = py_test_util:collecting_leader(),
    Self = self(),
    Spawner = spawn_link(fun() ->
                                 group_leader(Leader, self()),
                                 ok = py_event_loop:spawn_task(builtins, print, [<<"spawned">>]),
                                 Self ! {self(), done},
                                 receive stop -> ok end
                         end),
    receive {Spawner, done} -> ok end,
    true = py_test_util:wait_until(fun() -> py_test_util:collected(Leader) =:= <<"spawned\n">> end),
    {messages, []} = process_info(Spawner, messages),
    Spawner ! stop,
    ok.

py_event_loop_exec(Code) ->
    {ok, Loop} = py_event_loop:get_loop(),
    py_nif:event_loop_exec(py_event_loop:get_nif_ref(Loop), Code).

%% A group leader that never answers holds at most 4 MiB of relayed output
%% (the rest is dropped, with a line saying so) while everyone else's keeps
%% flowing; once cut off, it holds its callers' answers back no more; once
%% the leaders are gone, output flows to their callers' new leaders again.
relayed_output_is_bounded_at_a_stuck_group_leader(_Config) ->
    Self = self(),
    Big = binary:copy(<<"y">>, 1048575),
    %% three stuck leaders, each sent 6 MiB: every call within its own
    %% bound, each leader past its own
    Stuck = [spawn(fun() -> stuck_leader(Self, 0, []) end) || _ <- lists:seq(1, 3)],
    Callers = [spawn_link(fun() ->
                                  group_leader(Leader, self()),
                                  Refs = [py:spawn_call(builtins, print, [Big]) || _ <- lists:seq(1, 6)],
                                  Self ! {self(), [py:await(R, infinity) || R <- Refs]}
                          end) || Leader <- Stuck],
    Answers = lists:duplicate(6, {ok, none}),
    [Answers = receive {C, As} -> As end || C <- Callers],
    %% meanwhile, another caller's output arrives as ever
    {{ok, none}, <<"still flowing\n">>} =
        with_group_leader(fun() -> py:await(py:spawn_call(builtins, print, [<<"still flowing">>])) end),
    Reports = [begin L ! {report, self()}, receive {L, B, T} -> {B, T} end end || L <- Stuck],
    [true = B =< 4 * 1024 * 1024 || {B, _} <- Reports],
    [true = lists:any(fun(T) -> binary:match(T, <<"output dropped">>) =/= nomatch end, Notes) || {_, Notes} <- Reports],
    [exit(L, kill) || L <- Stuck],
    true = py_test_util:wait_until(
             fun() ->
                     {R, Text} = with_group_leader(fun() -> py:await(py:spawn_call(builtins, print, [<<"flowing">>])) end),
                     {ok, none} = R,
                     Text =:= <<"flowing\n">>
             end),
    ok.

%% A leader that takes text and never replies, within its bound: the
%% caller's answer waits for the text, as the caller's own io:format would;
%% the leader's exit lets it go.
an_answer_waits_for_its_text(_Config) ->
    Self = self(),
    Stuck = spawn(fun() -> stuck_leader(Self, 0, []) end),
    Caller = spawn_link(fun() ->
                                group_leader(Stuck, self()),
                                Ref = py:spawn_call(builtins, print, [<<"to a stuck leader">>]),
                                Self ! {self(), sent},
                                Self ! {self(), py:await(Ref, infinity)}
                        end),
    receive {Caller, sent} -> ok end,
    true = py_test_util:wait_until(fun() -> Stuck ! {report, self()}, receive {Stuck, B, _} -> B > 0 end end),
    {messages, []} = process_info(self(), messages),  % no answer while the text waits
    exit(Stuck, kill),
    receive {Caller, {ok, none}} -> ok end,
    ok.

%% A slow group leader cut off past its bound, then catching up: every
%% reply, the cut note's last, is taken in stride (the relay, whose crash
%% would restart the whole tree, is the same process afterwards), and the
%% leader gets output again.
relay_survives_a_leader_catching_up(_Config) ->
    Relay = whereis(py_relay),
    Self = self(),
    Leader = spawn_link(fun() -> held_leader(Self, []) end),
    Big = binary:copy(<<"z">>, 1048575),
    Caller = spawn_link(fun() ->
                                group_leader(Leader, self()),
                                %% no newlines: the cut note is the last write pending
                                Refs = [py:spawn_call(builtins, print, [Big], #{'end' => <<>>}) || _ <- lists:seq(1, 6)],
                                Self ! {self(), [py:await(R, infinity) || R <- Refs]}
                        end),
    Answers = lists:duplicate(6, {ok, none}),
    Answers = receive {Caller, As} -> As end,
    Leader ! release,
    true = py_test_util:wait_until(fun() -> map_size(element(2, sys:get_state(py_relay))) =:= 0 end),
    Relay = whereis(py_relay),
    {messages, Notes} = process_info(Leader, messages),
    [] = Notes,
    Leader ! {text, self()},
    Text = receive {Leader, T} -> T end,
    {_, _} = binary:match(Text, <<"4 MiB behind">>),
    After = spawn_link(fun() ->
                               group_leader(Leader, self()),
                               Self ! {self(), py:await(py:spawn_call(builtins, print, [<<"caught up">>]))}
                       end),
    {ok, none} = receive {After, R} -> R end,
    Leader ! {text, self()},
    Later = receive {Leader, L} -> L end,
    {_, _} = binary:match(Later, <<"caught up\n">>),
    ok.

%% Holds io requests until told, then answers them all, in order, and
%% collects as py_test_util's leader does.
held_leader(Test, Held) ->
    receive
        {io_request, _, _, _} = Request ->
            held_leader(Test, [Request | Held]);
        release ->
            Text = [begin From ! {io_reply, ReplyAs, ok}, Chars end
                    || {io_request, From, ReplyAs, {put_chars, _, Chars}} <- lists:reverse(Held)],
            py_test_util:collecting_leader_loop(Text)
    end.

%% Takes io requests and never replies; keeps only the notes.
stuck_leader(Test, Bytes, Notes) ->
    receive
        {io_request, _From, _ReplyAs, {put_chars, _, Chars}} ->
            Bin = iolist_to_binary(Chars),
            Notes1 = case byte_size(Bin) < 200 of
                         true -> [Bin | Notes];
                         false -> Notes
                     end,
            stuck_leader(Test, Bytes + byte_size(Bin), Notes1);
        {report, Test} ->
            Test ! {self(), Bytes, Notes},
            stuck_leader(Test, Bytes, Notes)
    end.
