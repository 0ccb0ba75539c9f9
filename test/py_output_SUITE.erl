%% Spec §13: what Python writes to sys.stdout and sys.stderr while serving
%% a call reaches the calling process's group leader, before the call's
%% answer; output from threads serving nobody goes where it went before.
-module(py_output_SUITE).
-include_lib("common_test/include/ct.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, worker}, {group, subinterp}, {group, owngil}, {group, once}].

groups() ->
    Cases = [print_reaches_the_group_leader, output_comes_before_the_answer, partial_lines_stderr_flush,
             huge_output_is_bounded, text_that_is_not_utf8, timed_out_call_leaves_nothing,
             threads_serving_nobody, printing_nothing_sends_nothing],
    [{worker, [], Cases}, {subinterp, [], Cases}, {owngil, [], Cases},
     {once, [], [ct_captures_python_output, event_loop_output_stays_out_of_mailboxes]}].

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
    ok.

%% Event-loop jobs are not routed: a spawned task that prints leaves no
%% message in the spawner's mailbox (nobody would take it).
event_loop_output_stays_out_of_mailboxes(_Config) ->
    Text = <<"event-loop output (expected on the VM stdout)">>,
    {ok, _} = with_group_leader(fun() ->
                                        ok = py_event_loop:spawn_task(builtins, print, [Text]),
                                        {ok, none} = py_event_loop:run(builtins, print, [Text]),
                                        {messages, []} = process_info(self(), messages),
                                        ok
                                end),
    ok.
