%% The application as a whole, each case in a fresh VM (peer node):
%% configuration, restart, and a Python that cannot start.
-module(py_app_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [configured_pool_and_paths, imports_at_start, packages_from_app_env, application_restart,
     python_that_cannot_start, stopping_the_app_stops_contexts, atom_budget, atom_budget_isolated, pool_in_each_mode,
     callback_registry_restart].

init_per_suite(Config) ->
    Config.

end_per_suite(_Config) ->
    ok.

%% A fresh VM with our code path; Args are extra `erl' arguments.
start_peer(Args) ->
    start_peer(Args, []).

start_peer(Args, Env) ->
    Paths = lists:append([["-pa", filename:dirname(code:which(M))] || M <- [py, ?MODULE]]),
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(), args => Paths ++ Args,
                                         env => Env, connection => standard_io, wait_boot => ?PATIENCE}),
    {Peer, Node}.

%% peer:call/4 gives up after 5 s: too little for a start-up on a busy machine.
pcall(Peer, Module, Function, Args) ->
    peer:call(Peer, Module, Function, Args, ?PATIENCE).

configured_pool_and_paths(Config) ->
    Dir = ?config(priv_dir, Config),
    ok = file:write_file(filename:join(Dir, "ep_extra_mod.py"), <<"VALUE = 'found on python_path'\n">>),
    {Peer, _} = start_peer(["-erlang_python", "num_contexts", "3",
                            "-erlang_python", "python_path", lists:flatten(io_lib:format("~p", [[Dir]]))]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    3 = pcall(Peer, py_context_pool, size, []),
    #{contexts := Contexts} = pcall(Peer, py, info, []),
    3 = length(Contexts),
    {ok, <<"found on python_path">>} = pcall(Peer, py, eval, [<<"__import__('ep_extra_mod').VALUE">>]),
    peer:stop(Peer).

imports_at_start(_Config) ->
    {Peer, _} = start_peer(["-erlang_python", "imports", "[decimal, <<\"json\">>]",
                            "-erlang_python", "num_contexts", "1"]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    {ok, true} = pcall(Peer, py, eval, [<<"'decimal' in __import__('sys').modules and 'json' in __import__('sys').modules">>]),
    peer:stop(Peer),
    %% a module that does not exist stops the pool from starting, with the reason
    {Peer2, _} = start_peer(["-erlang_python", "imports", "[no_such_module_xyz]"]),
    {error, {erlang_python, {{shutdown, {failed_to_start_child, py_context_pool, PoolWhy}}, _}}} =
        pcall(Peer2, application, ensure_all_started, [erlang_python]),
    {shutdown, {failed_to_start_child, {py_context, 1},
                {import_failed, no_such_module_xyz, {'ModuleNotFoundError', _}}}} = PoolWhy,
    peer:stop(Peer2).

%% Spec §12's app env forms: a venv, imports and preload code are in place
%% before the pool takes calls; a venv that cannot be used stops the start.
packages_from_app_env(Config) ->
    {ok, #{version_info := {Ma, Mi, _}}} = py_nif:runtime_info(),
    Venv = filename:join(?config(priv_dir, Config), "app_env_venv"),
    Site = filename:join([Venv, "lib", io_lib:format("python~b.~b", [Ma, Mi]), "site-packages"]),
    ok = filelib:ensure_path(Site),
    ok = file:write_file(filename:join(Venv, "pyvenv.cfg"), io_lib:format("home = /x\nversion = ~b.~b.0\n", [Ma, Mi])),
    ok = file:write_file(filename:join(Site, "ep_app_venv_mod.py"), <<"WHERE = 'app env venv'\n">>),
    {Peer, _} = start_peer(["-erlang_python", "venv", lists:flatten(io_lib:format("~p", [Venv])),
                            "-erlang_python", "imports", "[ep_app_venv_mod]",
                            "-erlang_python", "preload", "<<\"ANSWER = 6 * 7\">>",
                            "-erlang_python", "num_contexts", "2"]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    {ok, {true, 42}} = pcall(Peer, py, eval, [<<"('ep_app_venv_mod' in __import__('sys').modules, ANSWER)">>]),
    {ok, #{active := true, path := VenvBin}} = pcall(Peer, py, venv_info, []),
    VenvBin = list_to_binary(Venv),
    peer:stop(Peer),
    {Peer2, _} = start_peer(["-erlang_python", "venv", "\"/no/such/venv\""]),
    {error, {erlang_python, {{shutdown, {failed_to_start_child, py_packages, Why}}, _}}} =
        pcall(Peer2, application, ensure_all_started, [erlang_python]),
    {venv, {not_a_venv, "/no/such/venv"}} = Why,
    peer:stop(Peer2),
    %% preload as a string is code too; something else is refused by name
    {Peer3, _} = start_peer(["-erlang_python", "preload", "\"AS_STRING = 1\""]),
    {ok, _} = pcall(Peer3, application, ensure_all_started, [erlang_python]),
    {ok, 1} = pcall(Peer3, py, eval, [<<"AS_STRING">>]),
    peer:stop(Peer3),
    {Peer4, _} = start_peer(["-erlang_python", "preload", "[1.5]"]),
    {error, {erlang_python, {{shutdown, {failed_to_start_child, py_packages, {badarg, {preload, [1.5]}}}}, _}}} =
        pcall(Peer4, application, ensure_all_started, [erlang_python]),
    peer:stop(Peer4).

application_restart(_Config) ->
    {Peer, _} = start_peer([]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    {ok, 2} = pcall(Peer, py, eval, [<<"1 + 1">>]),
    ok = pcall(Peer, application, stop, [erlang_python]),
    %% Python stays initialised (it is never finalised); the pool comes back
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    {ok, 3} = pcall(Peer, py, eval, [<<"1 + 2">>]),
    #{contexts_alive := N} = pcall(Peer, py, info, []),
    ?assertEqual(pcall(Peer, py_context_pool, size, []), N),
    peer:stop(Peer).

python_that_cannot_start(_Config) ->
    {Peer, _} = start_peer([], [{"ERLANG_PYTHON_HOME", "/nonexistent/python/home"}]),
    {error, {erlang_python, {{python_not_started, Why}, _}}} =
        pcall(Peer, application, ensure_all_started, [erlang_python]),
    true = is_binary(Why),
    ct:pal("start-up failure reported as: ~s", [Why]),
    %% the VM is alive and well
    3 = pcall(Peer, erlang, '+', [1, 2]),
    {error, {python_not_started, _}} = pcall(Peer, py_nif, runtime_info, []),
    peer:stop(Peer).

stopping_the_app_stops_contexts(_Config) ->
    {Peer, _} = start_peer([]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    Ctx = pcall(Peer, py, context, [1]),
    ok = pcall(Peer, application, stop, [erlang_python]),
    {error, context_not_running} = pcall(Peer, py, eval, [Ctx, <<"1">>]),
    #{contexts := [], contexts_alive := 0} = pcall(Peer, py, info, []),
    {error, context_not_running} = pcall(Peer, py, eval, [<<"1">>]),
    peer:stop(Peer).

%% Python code cannot fill the atom table (the VM would abort): new atoms
%% made for it are budgeted; existing atoms always work.
atom_budget(_Config) ->
    {Peer, _} = start_peer([]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    %% (each peer:call runs in a new process, so a new namespace)
    {ok, Atoms} = pcall(Peer, py, eval, [<<"[__import__('erlang').Atom('ep_budget_%d' % i) for i in range(100000)]">>]),
    100000 = length(Atoms),
    {error, {badarg, _}} = pcall(Peer, py, eval, [<<"__import__('erlang').Atom('one_too_many')">>]),
    {ok, ok} = pcall(Peer, py, eval, [<<"__import__('erlang').Atom('ok')">>]),
    {ok, ep_budget_7} = pcall(Peer, py, eval, [<<"__import__('erlang').Atom('ep_budget_7')">>]),
    %% an exception class with a new name comes back as a binary
    {error, {<<"BrandNewError">>, <<"x">>}} =
        pcall(Peer, py, exec, [<<"class BrandNewError(Exception):\n    pass\nraise BrandNewError('x')">>]),
    {error, {'ValueError', _}} = pcall(Peer, py, exec, [<<"raise ValueError('y')">>]),
    peer:stop(Peer).

%% The same budget holds for an isolated context's Python, and is shared:
%% a worker in another OS process cannot fill the VM's atom table either.
atom_budget_isolated(_Config) ->
    {Peer, _} = start_peer(["-erlang_python", "context_mode", "isolated", "-erlang_python", "num_contexts", "1"]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    {ok, Atoms} = pcall(Peer, py, eval, [<<"[__import__('erlang').Atom('ep_iso_%d' % i) for i in range(99990)]">>]),
    99990 = length(Atoms),
    {error, {badarg, _}} = pcall(Peer, py, eval, [<<"[__import__('erlang').Atom('ep_more_%d' % i) for i in range(20)]">>]),
    %% in-process interpreters draw on the same budget
    Beside = fun() ->
                     {ok, Ctx} = py_context:start_link(beside, worker),
                     try py:eval(Ctx, <<"__import__('erlang').Atom('ep_beside_new')">>)
                     after py_context:stop(Ctx)
                     end
             end,
    {error, {badarg, _}} = pcall(Peer, erlang, apply, [Beside, []]),
    {ok, ok} = pcall(Peer, py, eval, [<<"__import__('erlang').Atom('ok')">>]),
    {ok, ep_iso_7} = pcall(Peer, py, eval, [<<"__import__('erlang').Atom('ep_iso_7')">>]),
    %% an exception class with a new name comes back as a binary
    {error, {<<"BrandNewError">>, <<"x">>}} =
        pcall(Peer, py, exec, [<<"class BrandNewError(Exception):\n    pass\nraise BrandNewError('x')">>]),
    {error, {'ValueError', _}} = pcall(Peer, py, exec, [<<"raise ValueError('y')">>]),
    %% erlang.send raises in Python rather than send what the VM cannot read
    Send = <<"import erlang\n"
             "try:\n"
             "    erlang.send(erlang.self(), erlang.Atom('ep_send_new'))\n"
             "    r = 'sent'\n"
             "except Exception as e:\n"
             "    r = type(e).__name__\n">>,
    {ok, <<"TypeError">>} = pcall(Peer, py, eval, [<<"(exec(code, g), g['r'])[1]">>, #{code => Send, g => #{}}]),
    peer:stop(Peer).

%% context_mode selects the pool's mode; a mode this Python lacks makes the
%% application refuse to start, with the reason.
pool_in_each_mode(_Config) ->
    [begin
         {Peer, _} = start_peer(["-erlang_python", "context_mode", atom_to_list(Mode),
                                 "-erlang_python", "num_contexts", "2"]),
         case pcall(Peer, application, ensure_all_started, [erlang_python]) of
             {ok, _} ->
                 #{contexts := [#{mode := Mode}, #{mode := Mode}]} = pcall(Peer, py, info, []),
                 ok = pcall(Peer, py, exec, [<<"import math, json, asyncio, decimal, sqlite3">>]),
                 {ok, 4.0} = pcall(Peer, py, call, [math, sqrt, [16]]),
                 {ok, <<"0.3">>} = pcall(Peer, py, eval, [<<"str(__import__('decimal').Decimal('0.1') * 3)">>]);
             {error, {erlang_python, {{shutdown, {failed_to_start_child, py_context_pool, Why}}, _}}} ->
                 {shutdown, {failed_to_start_child, {py_context, 1}, {Unsupported, _}}} = Why,
                 true = lists:member(Unsupported, [subinterp_unsupported, owngil_unsupported])
         end,
         peer:stop(Peer)
     end || Mode <- [worker, subinterp, owngil]],
    ok.

%% py_callbacks restarting starts an empty registry, and Python sees the
%% same; the pool is untouched.
callback_registry_restart(_Config) ->
    {Peer, _} = start_peer([]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [erlang_python]),
    Ctx = pcall(Peer, py, context, [1]),
    ok = pcall(Peer, py, register_function, [twice, erlang, length]),
    {ok, true} = pcall(Peer, py, eval, [<<"hasattr(__import__('erlang'), 'twice')">>]),
    Old = pcall(Peer, erlang, whereis, [py_callbacks]),
    true = pcall(Peer, erlang, exit, [Old, kill]),
    true = py_test_util:wait_until(fun() ->
                                       New = pcall(Peer, erlang, whereis, [py_callbacks]),
                                       is_pid(New) andalso New =/= Old
                                   end),
    {ok, false} = pcall(Peer, py, eval, [<<"hasattr(__import__('erlang'), 'twice')">>]),
    Ctx = pcall(Peer, py, context, [1]),
    peer:stop(Peer).
