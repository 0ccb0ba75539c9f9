%% Python's logging into Erlang's logger (spec §8): levels, metadata,
%% tracebacks, every kind of thread and interpreter, no relay, floods.
-module(py_logging_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [warning_reaches_logger, levels, exception_traceback, from_threads_and_the_loop,
     from_subinterpreters, without_the_relay, flood, handler_can_be_added_back,
     import_hook_cases, basic_config_still_works, awkward_messages, relay_survives_junk].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_testcase(_Case, Config) ->
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = py_test_util:capture_logs(?MODULE, fun(Meta) -> maps:is_key(python_logger, Meta) end),
    [{primary_level, Level} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(?MODULE),
    ok = logger:set_primary_config(level, ?config(primary_level, Config)),
    py_test_util:flush(),
    ok.

record(Name) ->
    receive
        {logged, Level, Text, #{python_logger := Name} = Meta} -> {Level, Text, Meta}
    after ?PATIENCE ->
        error({no_record, Name})
    end.

%% The next record from Python, of any logger. Records logged by one
%% thread arrive in the order they were logged, so a record logged after
%% one that must not arrive shows it did not: it comes first.
next_record() ->
    receive
        {logged, Level, Text, #{python_logger := Name}} -> {Level, Name, Text}
    after ?PATIENCE ->
        error(no_record)
    end.

warning_reaches_logger(_Config) ->
    ok = py:exec(<<"
import logging
def warn_about_disk():
    logging.getLogger('logging_suite.disk').warning('disk %s', 'full')
warn_about_disk()
">>),
    {warning, <<"disk full">>, Meta} = record(<<"logging_suite.disk">>),
    Self = self(),
    #{pid := Self, python_location := #{function := <<"warn_about_disk">>, line := 4}} = Meta,
    %% below Python's default level (WARNING): not sent at all
    ok = py:exec(<<"logging.getLogger('logging_suite.disk').info('quiet')\n"
                   "logging.getLogger('logging_suite.disk').warning('loud')">>),
    {warning, <<"logging_suite.disk">>, <<"loud">>} = next_record().

levels(_Config) ->
    ok = py:exec(<<"
import logging
lv = logging.getLogger('levels')
lv.setLevel(logging.DEBUG)
lv.debug('d')
lv.info('i')
lv.log(25, 'between info and warning')
lv.warning('w')
lv.error('e')
lv.critical('c')
">>),
    [{debug, <<"d">>}, {info, <<"i">>}, {info, <<"between info and warning">>}, {warning, <<"w">>},
     {error, <<"e">>}, {critical, <<"c">>}] =
        [begin {L, T, _} = record(<<"levels">>), {L, T} end || _ <- lists:seq(1, 6)].

exception_traceback(_Config) ->
    ok = py:exec(<<"
import logging
try:
    {}['missing']
except KeyError:
    logging.getLogger('tb').exception('lookup failed')
">>),
    {error, Text, _} = record(<<"tb">>),
    {match, _} = re:run(Text, "lookup failed\nTraceback \\(most recent call last\\):"),
    {match, _} = re:run(Text, "KeyError: 'missing'").

from_threads_and_the_loop(_Config) ->
    ok = py:exec(<<"
import logging, threading
t = threading.Thread(target=lambda: logging.getLogger('thread').warning('from a thread'))
t.start()
t.join()
">>),
    {warning, <<"from a thread">>, ThreadMeta} = record(<<"thread">>),
    %% no Erlang process is calling on that thread
    ?assertNotEqual(self(), maps:get(pid, ThreadMeta)),
    {ok, Loop} = py_event_loop:get_loop(),
    ok = py_nif:event_loop_exec(py_event_loop:get_nif_ref(Loop), <<"
import asyncio, logging
async def logs():
    await asyncio.sleep(0)
    logging.getLogger('loop').error('from the event loop')
    return 'logged'
">>),
    {ok, <<"logged">>} = py_event_loop:run('__main__', logs, []),
    %% after the task's first suspension, still the process that started it
    Self = self(),
    {error, <<"from the event loop">>, #{pid := Self}} = record(<<"loop">>).

from_subinterpreters(_Config) ->
    Modes = [M || M <- [subinterp, owngil], supported(M)],
    [begin
         {ok, Ctx} = py_context:start_link({logging, Mode}, Mode),
         unlink(Ctx),
         try
             ok = py:exec(Ctx, <<"import logging\nlogging.getLogger('sub').warning('from ' + __import__('sys').implementation.name)">>),
             {warning, <<"from cpython">>, #{pid := Self}} = record(<<"sub">>),
             Self = self()
         after
             py_context:stop(Ctx)
         end
     end || Mode <- Modes],
    case Modes of
        [] -> {comment, "this Python has no subinterpreter modes"};
        _ -> ok
    end.

supported(Mode) ->
    case py_context:start_link({probe, Mode}, Mode) of
        {ok, Ctx} -> unlink(Ctx), py_context:stop(Ctx), true;
        {error, _} -> false
    end.

%% With the relay process gone, records are dropped: logging goes on.
without_the_relay(_Config) ->
    ok = supervisor:terminate_child(erlang_python_sup, py_logger),
    try
        ok = py:exec(<<"import logging\nfor i in range(100):\n    logging.getLogger('nobody').error('lost %d', i)">>)
    after
        {ok, _} = supervisor:restart_child(erlang_python_sup, py_logger)
    end,
    ok = py:exec(<<"logging.getLogger('back').error('relay back')">>),
    {error, <<"back">>, <<"relay back">>} = next_record().

%% Far more records than can be logged: the relay drops the excess, says
%% so, and keeps working.
flood(_Config) ->
    Relay = whereis(py_logger),
    %% only this suite's handler sees them
    ok = logger:add_primary_filter(no_flood_output, {fun quiet_flood/2, self()}),
    try
        ok = py:exec(<<"
import logging
flood = logging.getLogger('flood')
for i in range(50000):
    flood.error('record %d', i)
">>),
        ok = py:exec(<<"logging.getLogger('after').error('after the flood')">>),
        true = py_test_util:wait_until(fun() -> got_after() end)
    after
        logger:remove_primary_filter(no_flood_output)
    end,
    Relay = whereis(py_logger),
    py_test_util:flush().

quiet_flood(#{meta := #{python_logger := <<"flood">>}}, Pid) ->
    Pid ! flood_record,
    stop;
quiet_flood(Event, _) ->
    Event.

got_after() ->
    receive
        {logged, error, <<"after the flood">>, #{python_logger := <<"after">>}} -> true;
        _ -> got_after()
    after 100 ->
        false
    end.

%% logging.basicConfig(force=True) replaces the root handlers; the handler
%% class is erlang.LogHandler, to add back.
handler_can_be_added_back(_Config) ->
    ok = py:exec(<<"
import logging, erlang, io
logging.basicConfig(force=True, stream=io.StringIO())
logging.getLogger('gone').error('only to the stream')
logging.getLogger().addHandler(erlang.LogHandler())
logging.getLogger('again').error('to Erlang again')
">>),
    {error, <<"again">>, <<"to Erlang again">>} = next_record(),
    %% leave the root logger as it was: one LogHandler
    ok = py:exec(<<"
root = logging.getLogger()
for h in list(root.handlers):
    root.removeHandler(h)
root.addHandler(erlang.LogHandler())
">>).

%% The import hook connects logging whenever it is executed: after a mere
%% importlib.util.find_spec, and again on importlib.reload.
import_hook_cases(_Config) ->
    Check = <<"(
    any(type(f).__name__ == '_ConnectLoggingOnImport' for f in __import__('sys').meta_path),
    [type(h).__name__ for h in __import__('logging').getLogger().handlers])">>,
    {ok, {true, [<<"LogHandler">>]}} = py:eval(Check),
    case supported(owngil) of
        true ->
            {ok, Ctx} = py_context:start_link(hook_check, owngil),
            unlink(Ctx),
            try
                ok = py:exec(Ctx, <<"
import importlib.util, sys
assert 'logging' not in sys.modules
importlib.util.find_spec('logging')
import logging, importlib
">>),
                {ok, {true, [<<"LogHandler">>]}} = py:eval(Ctx, Check),
                ok = py:exec(Ctx, <<"importlib.reload(logging)\nlogging.getLogger('reloaded').error('after reload')">>),
                {ok, {true, [<<"LogHandler">>]}} = py:eval(Ctx, Check),
                {error, <<"after reload">>, _} = record(<<"reloaded">>)
            after
                py_context:stop(Ctx)
            end;
        false ->
            {comment, "no subinterpreters on this Python: main interpreter only"}
    end.

%% basicConfig still configures the root logger when ours is its only
%% handler, and keeps ours.
basic_config_still_works(_Config) ->
    ok = py:exec(<<"
import logging, io
stream = io.StringIO()
logging.basicConfig(level=logging.INFO, stream=stream, format='%(levelname)s:%(message)s')
logging.getLogger('basic').info('configured')
">>),
    {info, <<"configured">>, _} = record(<<"basic">>),
    {ok, <<"INFO:configured\n">>} = py:eval(<<"stream.getvalue()">>),
    ok = py:exec(<<"
root = logging.getLogger()
for h in list(root.handlers):
    if not getattr(h, '_erlang_python', False):
        root.removeHandler(h)
root.setLevel(logging.WARNING)
">>),
    {ok, [<<"LogHandler">>]} = py:eval(<<"[type(h).__name__ for h in logging.getLogger().handlers]">>).

%% Undecodable text is escaped, huge messages are cut.
awkward_messages(_Config) ->
    ok = py:exec(<<"
import logging
aw = logging.getLogger('awkward')
aw.error('bad: ' + b'\\xff'.decode('utf-8', 'surrogateescape'))
aw.error('x' * 200000)
">>),
    {error, <<"bad: \\udcff">>, _} = record(<<"awkward">>),
    {error, Long, _} = record(<<"awkward">>),
    true = byte_size(Long) < 70000,
    {match, _} = re:run(Long, "^x{1000}.*\\[\\d+ bytes cut\\]$", [dotall]).

%% Messages of any shape sent to the relay do not crash it (it is
%% supervised with everything else).
relay_survives_junk(_Config) ->
    Relay = whereis(py_logger),
    [Relay ! Junk || Junk <- [{py_log, 30, <<"n">>, <<"m">>, #{}}, {py_log, x, y, z, w}, {py_log, 30, <<"n">>,
                                                                                              <<255>>, #{caller => 1}},
                              report_dropped, hello]],
    ok = py:exec(<<"import logging\nlogging.getLogger('junk').error('still here')">>),
    {error, <<"still here">>, _} = record(<<"junk">>),
    Relay = whereis(py_logger).
