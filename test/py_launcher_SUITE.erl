%% Spec §11 (issue 13, first part): the launcher an isolated context starts
%% its Python through. It reports exactly how the Python process ended, sets
%% the memory limit, directory and environment, and leaves no orphan however
%% it or the VM ends. Real Pythons: Debian's 3.11 (with numpy) and the one
%% the NIF runs.
-module(py_launcher_SUITE).
-include_lib("common_test/include/ct.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [crashes_are_told_apart, start_failures, memory_limit_env_and_cd, bad_arguments,
     no_orphan_when_stopped, no_orphan_when_the_port_closes, no_orphan_when_the_vm_is_killed].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    %% the Python the NIF runs
    {ok, #{executable := Exe}} = py_nif:runtime_info(),
    [{python, binary_to_list(Exe)} | Config].

end_per_suite(_Config) ->
    py_test_util:stop().

launcher() ->
    filename:join(code:priv_dir(erlang_python), "erlang_python_launcher").

%% The port as an isolated context opens it.
open(Args) ->
    open_port({spawn_executable, launcher()}, [{args, Args}, {packet, 4}, binary, exit_status, use_stdio]).

%% Every frame it sends, then its exit status.
finish(Port) ->
    finish(Port, []).

finish(Port, Frames) ->
    receive
        {Port, {data, Frame}} -> finish(Port, [binary_to_term(Frame) | Frames]);
        {Port, {exit_status, Status}} -> {lists:reverse(Frames), Status}
    end.

run(Args) ->
    finish(open(Args)).

python_c(Config, Code) ->
    run(["--", ?config(python, Config), "-c", Code]).

%% ---------------------------------------------------------------------------

crashes_are_told_apart(Config) ->
    {[{py_worker_exit, {signal, 11}}], 139} = python_c(Config, "import ctypes; ctypes.string_at(0)"),
    {[{py_worker_exit, {signal, 6}}], 134} = python_c(Config, "import os; os.abort()"),
    {[{py_worker_exit, {exit_status, 3}}], 3} = python_c(Config, "import os; os._exit(3)"),
    {[{py_worker_exit, {signal, 9}}], 137} = python_c(Config, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
    %% what a port alone cannot tell from a segfault
    {[{py_worker_exit, {exit_status, 139}}], 139} = python_c(Config, "import os; os._exit(139)"),
    {[{py_worker_exit, {exit_status, 0}}], 0} = python_c(Config, "pass"),
    ok.

%% The child never became Python: errno comes back (ENOENT here).
start_failures(Config) ->
    Enoent = 2,
    {[{py_worker_exit, {exec_failed, Enoent}}], 127} = run(["--", "/no/such/python", "-c", "pass"]),
    {[{py_worker_exit, {exec_failed, Enoent}}], 127} = run(["--cd", "/no/such/dir", "--", ?config(python, Config), "-c", "pass"]),
    ok.

%% RLIMIT_AS covers every allocation, numpy's own included; the directory
%% and environment are the child's.
memory_limit_env_and_cd(Config) ->
    {[{py_worker_exit, {exit_status, 42}}], 42} =
        limited(?config(python, Config), "import sys", "bytearray(400 << 20)", 42),
    {[{py_worker_exit, {exit_status, 0}}], 0} = python_c(Config, "bytearray(400 << 20)"),
    case filelib:is_regular("/usr/lib/python3/dist-packages/numpy/__init__.py") of
        true ->
            {[{py_worker_exit, {exit_status, 43}}], 43} =
                limited("/usr/bin/python3", "import sys, numpy", "numpy.ones(100 << 20)", 43);
        false ->
            ct:comment("numpy for /usr/bin/python3 is not installed: its case did not run")
    end,
    Dir = ?config(priv_dir, Config),
    Check = "import os, sys; sys.exit(0 if os.environ['EP_X'] == 'hello' and os.getcwd() == sys.argv[1] else 5)",
    Real = filename:absname(Dir),
    {[{py_worker_exit, {exit_status, 0}}], 0} =
        run(["--env", "EP_X=hello", "--cd", Dir, "--", ?config(python, Config), "-c", Check, string:trim(Real, trailing, "/")]),
    ok.

%% Python runs Import, then Alloc under a 300 MiB limit, and exits with
%% Exit if the allocation raised MemoryError.
limited(Python, Import, Alloc, Exit) ->
    Code = Import ++ "\ntry:\n    " ++ Alloc ++ "\nexcept MemoryError:\n    sys.exit(" ++ integer_to_list(Exit) ++ ")\n",
    run(["--memory-limit", integer_to_list(300 bsl 20), "--", Python, "-c", Code]).

bad_arguments(_Config) ->
    Einval = 22,
    [{[{py_worker_exit, {exec_failed, Einval}}], 2} = run(Args)
     || Args <- [[], ["--bogus"], ["--memory-limit", "lots", "--", "x"], ["--env", "NOEQUALS", "--", "x"], ["--"]]],
    ok.

%% SIGTERM to the launcher (how a stopping context ends it) takes the
%% Python child with it at once.
no_orphan_when_stopped(Config) ->
    Port = open(["--", ?config(python, Config), "-c", "import time; time.sleep(600)"]),
    {os_pid, Launcher} = erlang:port_info(Port, os_pid),
    Child = child_of(Launcher),
    _ = os:cmd("kill -TERM " ++ integer_to_list(Launcher)),
    {[{py_worker_exit, {signal, 9}}], 137} = finish(Port),
    true = py_test_util:wait_until(fun() -> not py_test_util:os_process_alive(Child) end),
    ok.

%% The VM closing the port is end-of-file for a child that reads: it ends,
%% and so does the launcher.
no_orphan_when_the_port_closes(Config) ->
    Port = open(["--", ?config(python, Config), "-c", "import sys; sys.stdin.buffer.read()"]),
    {os_pid, Launcher} = erlang:port_info(Port, os_pid),
    Child = child_of(Launcher),
    true = port_close(Port),
    true = py_test_util:wait_until(fun() -> not py_test_util:os_process_alive(Child) andalso not py_test_util:os_process_alive(Launcher) end),
    ok.

%% A VM killed with SIGKILL runs no cleanup of its own: its erl_child_setup
%% ends, the launcher dies with it, the child with the launcher.
no_orphan_when_the_vm_is_killed(Config) ->
    Paths = ["-pa", filename:dirname(code:which(?MODULE)), "-pa", filename:dirname(code:which(py))],
    %% over its standard I/O: no distribution needed for this one
    {ok, Peer, _} = peer:start_link(#{connection => standard_io, args => Paths, wait_boot => ?PATIENCE}),
    unlink(Peer),
    Launcher = peer:call(Peer, ?MODULE, hold_sleeper, [?config(python, Config)], ?PATIENCE),
    Child = child_of(Launcher),
    VmPid = peer:call(Peer, os, getpid, []),
    _ = os:cmd("kill -KILL " ++ VmPid),
    true = py_test_util:wait_until(fun() -> not py_test_util:os_process_alive(Child) andalso not py_test_util:os_process_alive(Launcher) end),
    catch peer:stop(Peer),
    ok.

%% On the peer: a process holding a launcher whose Python sleeps; its
%% launcher's OS pid.
hold_sleeper(Python) ->
    Self = self(),
    spawn(fun() ->
                  Port = open(["--", Python, "-c", "import time; time.sleep(600)"]),
                  Self ! erlang:port_info(Port, os_pid),
                  receive never -> ok end
          end),
    receive {os_pid, P} -> P end.

%% The launcher's one child, once it has forked.
child_of(Launcher) ->
    File = "/proc/" ++ integer_to_list(Launcher) ++ "/task/" ++ integer_to_list(Launcher) ++ "/children",
    true = py_test_util:wait_until(fun() -> children(File) =/= [] end),
    [Child] = children(File),
    Child.

children(File) ->
    case file:read_file(File) of
        {ok, Text} -> [binary_to_integer(P) || P <- binary:split(Text, <<" ">>, [global, trim_all])];
        {error, _} -> []
    end.

