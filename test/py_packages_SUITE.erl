%% Spec §12: sys.path entries, imports, preload code and venvs in every
%% interpreter, running and future; venvs made and filled by pip offline
%% from wheels this suite builds; the seed's ML pipeline on a real model.
-module(py_packages_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, worker}, {group, subinterp}, {group, owngil}, {group, once}].

groups() ->
    Cases = [add_path_everywhere, import_everywhere, preload_everywhere, preload_failure_names_context,
             venv_everywhere],
    [{worker, [], Cases}, {subinterp, [], Cases}, {owngil, [], Cases},
     {once, [], [event_loop_gets_every_step, argument_errors, later_interpreters_replay_in_order,
                 pth_naming_a_path_already_there, refused_from_a_python_callback, venv_of_another_python_refused, venv_while_50_processes_call,
                 ensure_venv_installs_offline, ensure_venv_twice_installs_nothing,
                 ensure_venv_requirements_file, ensure_venv_pip_failure, requirement_strings_stay_requirements,
                 system_site_packages, ml_pipeline_on_a_real_model, server_restart_keeps_contexts_up_to_date]}].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

%% Steps live as long as the application: restart it so later suites see
%% interpreters as they were (the main one drops this suite's venv and
%% preload on the new epoch).
end_per_suite(_Config) ->
    ok = py_test_util:restart_application(),
    py_test_util:stop().

init_per_group(once, Config) ->
    Config;
init_per_group(Mode, Config) ->
    py_test_util:start_group_context({packages, Mode}, Mode, Config).

end_per_group(_Group, Config) ->
    py_test_util:stop_group_context(Config).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    ok = py:deactivate_venv(),
    py_test_util:flush(),
    ok.

%% ---------------------------------------------------------------------------
%% helpers

ctx(Config) -> ?config(ctx, Config).
mode(Config) -> ?config(mode, Config).

unique(Prefix) ->
    Prefix ++ integer_to_list(erlang:unique_integer([positive])).

%% A new directory under the case's priv_dir.
new_dir(Config, Prefix) ->
    Dir = filename:join(?config(priv_dir, Config), unique(Prefix)),
    ok = filelib:ensure_path(Dir),
    Dir.

%% Evaluates Expr in a fresh process (so in a fresh env) on Ctx.
fresh_eval(Ctx, Expr) ->
    Parent = self(),
    Pid = spawn(fun() -> Parent ! {self(), py:eval(Ctx, Expr)} end),
    receive {Pid, Result} -> Result end.

%% A second context of the group's mode, started after the step.
with_new_context(Config, Fun) ->
    {ok, New} = py_context:start_link(unique("later_"), mode(Config)),
    try Fun(New) after py_context:stop(New) end.

%% A wheel of package Name (version Vsn) whose __init__ is Init, in Dir:
%% built here so pip installs it with no index.
make_wheel(Dir, Name, Vsn, Init) ->
    Info = Name ++ "-" ++ Vsn ++ ".dist-info",
    Files = [{Name ++ "/__init__.py", Init},
             {Info ++ "/METADATA", "Metadata-Version: 2.1\nName: " ++ Name ++ "\nVersion: " ++ Vsn ++ "\n"},
             {Info ++ "/WHEEL", "Wheel-Version: 1.0\nGenerator: py_packages_SUITE\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}],
    Record = [[F, ",,\n"] || {F, _} <- Files] ++ [Info, "/RECORD,,\n"],
    Wheel = filename:join(Dir, Name ++ "-" ++ Vsn ++ "-py3-none-any.whl"),
    {ok, _} = zip:create(Wheel, [{F, iolist_to_binary(C)} || {F, C} <- Files ++ [{Info ++ "/RECORD", Record}]]),
    Wheel.

%% An empty venv of the running Python (no requirements: nothing for pip).
new_venv(Config) ->
    Dir = filename:join(?config(priv_dir, Config), unique("venv_")),
    ok = py:ensure_venv(Dir, []),
    ok = py:deactivate_venv(),
    {ok, #{version := V}} = py_venv:inspect(Dir),
    {Dir, filename:join([Dir, "lib", "python" ++ binary_to_list(V), "site-packages"])}.

sys_path(Ctx) ->
    {ok, Path} = py:eval(Ctx, <<"list(__import__('sys').path)">>),
    Path.

%% ---------------------------------------------------------------------------
%% each mode: running and later contexts

add_path_everywhere(Config) ->
    Ctx = ctx(Config),
    Dir = new_dir(Config, "mods_"),
    Mod = unique("ep_added_"),
    ok = file:write_file(filename:join(Dir, Mod ++ ".py"), "VALUE = 'from add_path'\n"),
    Expr = iolist_to_binary(["__import__('", Mod, "').VALUE"]),
    {error, {'ModuleNotFoundError', _}} = py:eval(Ctx, Expr),
    ok = py:add_path(Dir),
    ok = py:add_path(list_to_binary(Dir)),  % again: nothing new
    {ok, <<"from add_path">>} = py:eval(Ctx, Expr),
    {ok, <<"from add_path">>} = py:eval(Expr),  % the pool
    with_new_context(Config, fun(New) -> {ok, <<"from add_path">>} = py:eval(New, Expr) end),
    1 = length([P || P <- sys_path(Ctx), P =:= list_to_binary(Dir)]),
    ok.

import_everywhere(Config) ->
    Ctx = ctx(Config),
    Dir = new_dir(Config, "imp_"),
    Mod = unique("ep_imported_"),
    ok = file:write_file(filename:join(Dir, Mod ++ ".py"), "import sys\nLOADED_BY = 'import'\n"),
    ok = py:add_path(Dir),
    InModules = iolist_to_binary(["'", Mod, "' in __import__('sys').modules"]),
    {ok, false} = py:eval(Ctx, InModules),
    ok = py:import(list_to_binary(Mod)),
    {ok, true} = py:eval(Ctx, InModules),
    with_new_context(Config, fun(New) -> {ok, true} = py:eval(New, InModules) end),
    ok = py:import(json),
    {error, {import_failed, [{_, {'ModuleNotFoundError', _}} | _] = Failed}} = py:import(unique("no_such_")),
    named_where_it_ran(Config, Failed),
    ok.

%% A failure names the context that ran the step: the group's own one, but
%% in worker mode whichever thread of the shared main interpreter (a worker
%% context, or the event loop's py_event_loop) reached it first.
named_where_it_ran(Config, Failed) ->
    Ctx = ctx(Config),
    Workers = [Ctx, whereis(py_event_loop) | [P || {P, _, worker, _} <- py_context_registry:contexts()]],
    case mode(Config) of
        worker -> [_] = [P || {P, _} <- Failed, lists:member(P, Workers)];
        _ -> true = lists:keymember(Ctx, 1, Failed)
    end.

preload_everywhere(Config) ->
    Ctx = ctx(Config),
    Name = unique("preloaded_"),
    %% this process's env exists before the preload: it keeps its own names
    ok = py:exec(Ctx, <<"mine = 1">>),
    Code = iolist_to_binary(["import json\n", "def ", Name, "(x):\n    return json.dumps([x, x])\n",
                             "PRELOAD_ORDER = [1]\n"]),
    ok = py:preload(Code),
    Call = iolist_to_binary([Name, "(2)"]),
    {ok, <<"[2, 2]">>} = fresh_eval(Ctx, Call),
    {error, {'NameError', _}} = py:eval(Ctx, Call),
    {ok, 1} = py:eval(Ctx, <<"mine">>),
    %% a later preload sees the earlier one's names; both come before user code
    ok = py:preload(<<"PRELOAD_ORDER.append(2)">>),
    with_new_context(Config, fun(New) ->
                                     {ok, [1, 2]} = fresh_eval(New, <<"PRELOAD_ORDER">>),
                                     {ok, <<"[3, 3]">>} = fresh_eval(New, iolist_to_binary([Name, "(3)"]))
                             end),
    ok.

preload_failure_names_context(Config) ->
    Ctx = ctx(Config),
    {error, {preload_failed, Failed}} = py:preload(<<"raise ValueError('refused on purpose')">>),
    named_where_it_ran(Config, Failed),
    [{'ValueError', <<"refused on purpose">>}] = lists:usort([Why || {_, Why} <- Failed]),
    {error, {preload_failed, [{_, {'SyntaxError', _}} | _]}} = py:preload(<<"def (">>),
    %% the failed steps are dropped: later contexts start
    with_new_context(Config, fun(New) -> {ok, 2} = py:eval(New, <<"1 + 1">>) end),
    ok.

venv_everywhere(Config) ->
    Ctx = ctx(Config),
    {Venv, Site} = new_venv(Config),
    Mod = unique("ep_venv_mod_"),
    ok = file:write_file(filename:join(Site, Mod ++ ".py"), "WHERE = 'venv'\n"),
    %% a .pth file naming a directory, as editable installs make
    Extra = new_dir(Config, "pth_target_"),
    ok = file:write_file(filename:join(Extra, Mod ++ "_pth.py"), "WHERE = 'pth'\n"),
    ok = file:write_file(filename:join(Site, "ep_extra.pth"), [Extra, "\n# a comment\n\n"]),
    Expr = iolist_to_binary(["(__import__('", Mod, "').WHERE, __import__('", Mod, "_pth').WHERE)"]),
    ok = py:activate_venv(Venv),
    {ok, {<<"venv">>, <<"pth">>}} = py:eval(Ctx, Expr),
    with_new_context(Config, fun(New) -> {ok, {<<"venv">>, <<"pth">>}} = py:eval(New, Expr) end),
    {ok, #{active := true, path := VenvBin, site_packages := [SiteBin], system_site_packages := false}} =
        py:venv_info(),
    VenvBin = list_to_binary(Venv),
    SiteBin = list_to_binary(Site),
    true = lists:member(SiteBin, sys_path(Ctx)),
    ok = py:deactivate_venv(),
    false = lists:member(SiteBin, sys_path(Ctx)),
    false = lists:member(list_to_binary(Extra), sys_path(Ctx)),
    {ok, #{active := false}} = py:venv_info(),
    ok.

%% ---------------------------------------------------------------------------
%% once

%% The event loop's thread is in the main interpreter; it joins like a
%% context, so it has the steps even with no worker context running.
event_loop_gets_every_step(Config) ->
    Dir = new_dir(Config, "loop_mods_"),
    Mod = unique("ep_loop_mod_"),
    ok = file:write_file(filename:join(Dir, Mod ++ ".py"), "async def where():\n    return 'added path'\n"),
    ok = py:add_path(Dir),
    {ok, <<"added path">>} = py_event_loop:run(list_to_binary(Mod), where, []),
    ok = py:preload(<<"LOOP_PRELOAD = 'preloaded'">>),
    {ok, Loop} = py_event_loop:get_loop(),
    Self = self(),
    spawn(fun() -> Self ! {loop, py_nif:event_loop_eval(py_event_loop:get_nif_ref(Loop), <<"LOOP_PRELOAD">>)} end),
    receive {loop, Result} -> {ok, <<"preloaded">>} = Result end,
    {error, {preload_failed, Failed}} = py:preload(<<"raise KeyError('in the loop too')">>),
    %% the main interpreter reports once, by whichever of its threads ran it
    Main = [whereis(py_event_loop) | [C || {C, _, worker, _} <- py_context_registry:contexts()]],
    [{_, {'KeyError', _}}] = [F || {P, _} = F <- Failed, lists:member(P, Main)],
    ok.

argument_errors(Config) ->
    Missing = filename:join(?config(priv_dir, Config), "no_such_dir"),
    {error, {not_a_directory, Missing}} = py:add_path(Missing),
    {error, {badarg, 42}} = py:add_path(42),
    {error, {badarg, 42}} = py:import(42),
    {error, {badarg, <<>>}} = py:import(<<>>),
    {error, {badarg, {code}}} = py:preload({code}),
    {error, {badarg, [{code}]}} = py:preload([{code}]),
    {error, {not_a_venv, Missing}} = py:activate_venv(Missing),
    {error, {badarg, 42}} = py:activate_venv(42),
    %% a venv without site-packages for this Python
    NoSite = new_dir(Config, "nosite_"),
    {ok, V} = running_version(),
    ok = file:write_file(filename:join(NoSite, "pyvenv.cfg"), ["version = ", V, ".0\n"]),
    {error, {no_site_packages, _}} = py:activate_venv(NoSite),
    ok = file:write_file(filename:join(NoSite, "pyvenv.cfg"), "home = /nowhere\n"),
    {error, {venv_version_unknown, _}} = py:activate_venv(NoSite),
    Dir = filename:join(?config(priv_dir, Config), "never_made"),
    {error, {badarg, {option, colour}}} = py:ensure_venv(Dir, [], #{colour => blue}),
    {error, {badarg, options}} = py:ensure_venv(Dir, [], [no_index]),
    {error, {badarg, requirements}} = py:ensure_venv(Dir, [{pkg}]),
    {error, {badarg, requirements}} = py:ensure_venv(Dir, 42),
    {error, {badarg, [{dir}]}} = py:ensure_venv([{dir}], []),
    {error, {badarg, [{dir}]}} = py:activate_venv([{dir}]),
    {error, {badarg, [{dir}]}} = py:add_path([{dir}]),
    {error, {badarg, requirements}} = py:ensure_venv(Dir, [<<>>]),
    {error, {requirements_file, "no_such_requirements.txt", enoent}} =
        py:ensure_venv(Dir, "no_such_requirements.txt"),
    {error, {badarg, {option, find_links}}} = py:ensure_venv(Dir, [], #{find_links => foo}),
    {error, {badarg, {option, extra_args}}} = py:ensure_venv(Dir, [], #{extra_args => "-v"}),
    {error, {badarg, {option, index_url}}} = py:ensure_venv(Dir, [], #{index_url => 42}),
    {error, {badarg, {option, no_index}}} = py:ensure_venv(Dir, [], #{no_index => yes}),
    {error, {vcs_requirement_refused, <<"pkg @ hg+https://example.org/r">>}} =
        py:ensure_venv(Dir, [<<"pkg @ hg+https://example.org/r">>]),
    VcsFile = filename:join(?config(priv_dir, Config), "vcs_requirements.txt"),
    ok = file:write_file(VcsFile, "plain==1.0\n  git+https://example.org/r.git#egg=r\n"),
    {error, {vcs_requirement_refused, <<"git+https://example.org/r.git#egg=r">>}} = py:ensure_venv(Dir, VcsFile),
    false = filelib:is_dir(Dir),  % refused before anything was made
    ok.

%% A new interpreter replays the steps in the order they were asked for:
%% an import made while venv A was active still finds A's module, even
%% after venv B has replaced A.
later_interpreters_replay_in_order(Config) ->
    {VenvA, SiteA} = new_venv(Config),
    {VenvB, _} = new_venv(Config),
    Mod = unique("ep_only_in_a_"),
    ok = file:write_file(filename:join(SiteA, Mod ++ ".py"), "FROM = 'a'\n"),
    ok = py:activate_venv(VenvA),
    ok = py:import(list_to_binary(Mod)),
    ok = py:activate_venv(VenvB),
    ok = py:activate_venv(VenvB),  % again: nothing changes
    %% where this Python has only the main interpreter, a worker context
    %% starts, its interpreter having had every step already
    {ok, C} = first_context([owngil, subinterp, worker]),
    {ok, <<"a">>} = py:eval(C, iolist_to_binary(["__import__('sys').modules['", Mod, "'].FROM"])),
    py_context:stop(C),
    ok.

%% A .pth line naming a directory already on sys.path (from add_path)
%% neither doubles it nor takes it away on deactivation.
pth_naming_a_path_already_there(Config) ->
    {Venv, Site} = new_venv(Config),
    Extra = new_dir(Config, "already_"),
    ok = py:add_path(Extra),
    ok = file:write_file(filename:join(Site, "ep_dup.pth"), [Extra, "\n"]),
    ExtraBin = list_to_binary(Extra),
    ok = py:activate_venv(Venv),
    1 = length([P || P <- sys_path(py:context(1)), P =:= ExtraBin]),
    ok = py:deactivate_venv(),
    [ExtraBin | _] = sys_path(py:context(1)),
    ok.

%% From an Erlang function Python called, a step is refused rather than
%% left waiting on the very context that waits on the function.
refused_from_a_python_callback(Config) ->
    Dir = new_dir(Config, "from_callback_"),
    ok = py:register_function(ep_try_add_path, fun([D]) -> py:add_path(D) end),
    try
        {ok, {<<"error">>, <<"called_from_python">>}} =
            py:eval(<<"__import__('erlang').call('ep_try_add_path', d)">>, #{d => list_to_binary(Dir)}),
        %% a context started from a callback does get the steps
        ok = py:register_function(ep_start_context,
                                  fun([]) ->
                                          {ok, C} = py_context:start_link(unique("from_cb_"), worker),
                                          R = py:eval(C, <<"1 + 1">>),
                                          py_context:stop(C),
                                          R
                                  end),
        {ok, {<<"ok">>, 2}} = py:eval(<<"__import__('erlang').call('ep_start_context')">>)
    after
        py:unregister_function(ep_try_add_path),
        py:unregister_function(ep_start_context)
    end,
    ok.

running_version() ->
    {ok, #{version_info := {Ma, Mi, _}}} = py_nif:runtime_info(),
    {ok, io_lib:format("~b.~b", [Ma, Mi])}.

venv_of_another_python_refused(Config) ->
    {ok, #{version_info := {3, Mi, _}}} = py_nif:runtime_info(),
    Other = "3." ++ integer_to_list(Mi - 1),
    Dir = new_dir(Config, "other_python_"),
    ok = filelib:ensure_path(filename:join([Dir, "lib", "python" ++ Other, "site-packages"])),
    ok = file:write_file(filename:join(Dir, "pyvenv.cfg"), ["home = /elsewhere\nversion = ", Other, ".4\n"]),
    {ok, Running} = running_version(),
    RunningBin = iolist_to_binary(Running),
    OtherBin = list_to_binary(Other),
    {error, {venv_python_mismatch, #{venv := OtherBin, running := RunningBin}}} = py:activate_venv(Dir),
    {ok, #{active := false}} = py:venv_info(),
    ok.

%% Every request sees sys.path before or after the activation, never
%% between: the venv's site-packages, its .pth entry and the base's
%% site-packages move together, in the pool's contexts and another mode's.
venv_while_50_processes_call(Config) ->
    {Venv, Site} = new_venv(Config),
    Extra = new_dir(Config, "pth_"),
    ok = file:write_file(filename:join(Site, "ep_more.pth"), [Extra, "\n"]),
    Others = [C || Mode <- [subinterp, owngil],
                   {ok, C} <- [py_context:start_link(unique("racing_"), Mode)]],
    Ctxs = [py:context(I) || I <- lists:seq(1, py_context_pool:size())] ++ Others,
    Check = iolist_to_binary(["(lambda p: (", q(Site), " in p, ", q(Extra), " in p, any(",
                              "x.endswith(('site-packages', 'dist-packages')) and x != ", q(Site),
                              " for x in p)))(__import__('sys').path)"]),
    Parent = self(),
    Stop = atomics:new(1, []),
    Callers = [spawn_link(fun() -> Parent ! {self(), watch(lists:nth(1 + I rem length(Ctxs), Ctxs), Check, Stop, #{})} end)
               || I <- lists:seq(1, 50)],
    ok = py:activate_venv(Venv),
    %% each caller goes on until it has seen the new path at least once
    atomics:put(Stop, 1, 1),
    Seen = lists:foldl(fun(Pid, Acc) -> receive {Pid, S} -> maps:merge(Acc, S) end end, #{}, Callers),
    [py_context:stop(C) || C <- Others],
    Before = {false, false, true},
    After = {true, true, false},
    [] = maps:keys(Seen) -- [Before, After],
    true = maps:is_key(After, Seen),
    ok.

q(Path) -> ["'", Path, "'"].

watch(Ctx, Check, Stop, Seen) ->
    {ok, State} = py:eval(Ctx, Check),
    Seen1 = Seen#{State => true},
    case atomics:get(Stop, 1) =:= 1 andalso State =:= {true, true, false} of
        true -> Seen1;
        false -> watch(Ctx, Check, Stop, Seen1)
    end.

ensure_venv_installs_offline(Config) ->
    Wheels = new_dir(Config, "wheels_"),
    make_wheel(Wheels, "eptiny", "1.0", "VALUE = 42\n"),
    Venv = filename:join(?config(priv_dir, Config), "offline_venv"),
    ok = py:ensure_venv(list_to_binary(Venv), [<<"eptiny==1.0">>], #{find_links => Wheels, no_index => true}),
    {ok, 42} = py:eval(<<"__import__('eptiny').VALUE">>),
    {ok, #{active := true, path := VenvBin}} = py:venv_info(),
    VenvBin = list_to_binary(Venv),
    %% in a subinterpreter made later too, where this Python has them
    case py_context:start_link(unique("after_ensure_"), owngil) of
        {ok, New} ->
            {ok, 42} = py:eval(New, <<"__import__('eptiny').VALUE">>),
            py_context:stop(New);
        {error, {owngil_unsupported, _}} ->
            ok
    end,
    ok.

%% The second run installs nothing: with the wheel directory gone and no
%% index, pip would fail if it ran.
ensure_venv_twice_installs_nothing(Config) ->
    Wheels = new_dir(Config, "wheels_"),
    make_wheel(Wheels, "eptwice", "1.0", "VALUE = 'once'\n"),
    Venv = filename:join(?config(priv_dir, Config), "twice_venv"),
    Opts = #{find_links => list_to_binary(Wheels), no_index => true},
    ok = py:ensure_venv(Venv, ["eptwice"], Opts),
    Marker = filename:join(Venv, ".erlang_python_requirements"),
    {ok, #file_info{mtime = MTime, inode = Inode}} = file:read_file_info(Marker),
    ok = file:del_dir_r(Wheels),
    ok = py:deactivate_venv(),
    ok = py:ensure_venv(Venv, ["eptwice"], Opts),
    {ok, <<"once">>} = py:eval(<<"__import__('eptwice').VALUE">>),
    {ok, #file_info{mtime = MTime, inode = Inode}} = file:read_file_info(Marker),
    %% changed requirements do run pip: here it fails, the wheel being gone
    {error, {pip_failed, _}} = py:ensure_venv(Venv, ["eptwice", "epother"], Opts),
    ok.

ensure_venv_requirements_file(Config) ->
    Wheels = new_dir(Config, "wheels_"),
    make_wheel(Wheels, "epfile_a", "1.0", "VALUE = 'a'\n"),
    make_wheel(Wheels, "epfile_b", "2.0", "VALUE = 'b'\n"),
    File = filename:join(?config(priv_dir, Config), "requirements.txt"),
    ok = file:write_file(File, "# pinned\nepfile_a==1.0\n"),
    Venv = filename:join(?config(priv_dir, Config), "file_venv"),
    Opts = #{find_links => [Wheels], no_index => true},
    ok = py:ensure_venv(Venv, File, Opts),
    {ok, <<"a">>} = py:eval(<<"__import__('epfile_a').VALUE">>),
    %% the file changed: pip runs again
    ok = file:write_file(File, "epfile_a==1.0\nepfile_b\n"),
    ok = py:ensure_venv(Venv, list_to_binary(File), Opts),
    {ok, <<"b">>} = fresh_eval(py:context(1), <<"__import__('epfile_b').VALUE">>),
    ok.

ensure_venv_pip_failure(Config) ->
    %% a caller trapping exits (a gen_server, say) gets no port's 'EXIT'
    process_flag(trap_exit, true),
    Venv = filename:join(?config(priv_dir, Config), "failing_venv"),
    Empty = new_dir(Config, "no_wheels_"),
    {error, {pip_failed, Output}} =
        py:ensure_venv(Venv, [<<"epnowhere==9.9">>], #{find_links => Empty, no_index => true}),
    {_, _} = binary:match(Output, <<"epnowhere">>),
    {ok, #{active := false}} = py:venv_info(),
    false = filelib:is_regular(filename:join(Venv, ".erlang_python_requirements")),
    receive {'EXIT', Port, _} when is_port(Port) -> ct:fail(port_exit_leaked) after 0 -> ok end,
    process_flag(trap_exit, false),
    ok.

%% No shell and `--' before the requirements: an option-looking string and
%% one with a shell command are requirements pip refuses, nothing more.
requirement_strings_stay_requirements(Config) ->
    Venv = filename:join(?config(priv_dir, Config), "strict_venv"),
    Canary = filename:join(?config(priv_dir, Config), "canary"),
    Opts = #{no_index => true},
    {error, {pip_failed, Out1}} = py:ensure_venv(Venv, [<<"--index-url=http://x">>], Opts),
    {_, _} = binary:match(Out1, <<"Invalid requirement">>),
    {error, {pip_failed, Out2}} = py:ensure_venv(Venv, ["pkg; touch " ++ Canary], Opts),
    {_, _} = binary:match(Out2, [<<"Invalid">>, <<"Expected">>]),
    {error, {pip_failed, _}} = py:ensure_venv(Venv, ["pkg && touch " ++ Canary, "$(touch " ++ Canary ++ ")"], Opts),
    false = filelib:is_file(Canary),
    ok.

%% Without system site packages the base's site-packages leave sys.path;
%% with them they stay, after the venv's own.
system_site_packages(Config) ->
    BaseSite = [P || P <- sys_path(py:context(1)), is_site_dir(P)],
    ct:log("base site-packages: ~p", [BaseSite]),
    Isolated = filename:join(?config(priv_dir, Config), "isolated_venv"),
    ok = py:ensure_venv(Isolated, []),
    Path1 = sys_path(py:context(1)),
    [] = [P || P <- BaseSite, lists:member(P, Path1)],
    Shared = filename:join(?config(priv_dir, Config), "shared_venv"),
    ok = py:ensure_venv(Shared, [], #{system_site_packages => true}),
    {ok, #{system_site_packages := true, site_packages := [Own]}} = py:venv_info(),
    Path2 = sys_path(py:context(1)),
    [] = BaseSite -- Path2,
    true = index_of(Own, Path2) < lists:min([index_of(P, Path2) || P <- BaseSite] ++ [length(Path2) + 1]),
    ok = py:deactivate_venv(),
    [] = BaseSite -- sys_path(py:context(1)),
    ok.

is_site_dir(P) ->
    binary:longest_common_suffix([P, <<"site-packages">>]) =:= 13 orelse
        binary:longest_common_suffix([P, <<"dist-packages">>]) =:= 13.

index_of(X, L) -> length(lists:takewhile(fun(Y) -> Y =/= X end, L)) + 1.

%% Issue 14 item 4: scikit-learn (Debian's, Python 3.11) seen through a venv
%% made with system site packages, a model trained and pickled here, and
%% the seed's ml_predictor exactly as process-bound-envs.md writes it.
ml_pipeline_on_a_real_model(Config) ->
    case py:eval(<<"__import__('importlib.util').util.find_spec('sklearn') is not None">>) of
        {ok, true} -> ml_pipeline(Config);
        {ok, false} -> {skip, "scikit-learn is not installed for this Python (Debian's python3-sklearn is for 3.11)"}
    end.

ml_pipeline(Config) ->
    Venv = filename:join(?config(priv_dir, Config), "ml_venv"),
    ok = py:ensure_venv(Venv, [], #{system_site_packages => true}),
    Model = filename:join(?config(priv_dir, Config), "model.pkl"),
    ok = py:exec(<<"
import pickle
from sklearn.linear_model import LogisticRegression
X = [[0.0, 0.1], [0.2, 0.0], [0.1, 0.3], [2.0, 2.1], [2.2, 1.9], [1.9, 2.3]]
y = [0, 0, 0, 1, 1, 1]
model = LogisticRegression().fit(X, y)
def save(path):
    with open(path, 'wb') as f:
        pickle.dump(model, f)
">>),
    {ok, none} = py:eval(<<"save(path)">>, #{path => list_to_binary(Model)}),
    {ok, Predictor} = ml_predictor:start_link(list_to_binary(Model)),
    {ok, 0} = ml_predictor:predict(Predictor, [0.1, 0.1]),
    {ok, 1} = ml_predictor:predict(Predictor, [2.0, 2.0]),
    %% several predictors, each with its own model in its own env
    {ok, Second} = ml_predictor:start_link(list_to_binary(Model)),
    {ok, 1} = ml_predictor:predict(Second, [2.5, 2.5]),
    [begin unlink(P), gen_server:stop(P) end || P <- [Predictor, Second]],
    %% and the example make demo shows
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Example = filename:join([filename:dirname(filename:dirname(Source)), "examples", "ml_example.erl"]),
    {ok, ml_example, Beam} = compile:file(Example, [binary, return_errors]),
    {module, ml_example} = code:load_binary(ml_example, Example, Beam),
    ok = ml_example:main(),
    ok.

%% py_packages killed: the supervisor restarts it (and the pool after it);
%% a context a user started and that kept running is a member again.
server_restart_keeps_contexts_up_to_date(Config) ->
    %% an interpreter of its own where this Python has one: only its
    %% membership can bring it the step
    {ok, Ctx} = first_context([owngil, subinterp, worker]),
    unlink(Ctx),
    Old = whereis(py_packages),
    Mon = monitor(process, Old),
    exit(Old, kill),
    receive {'DOWN', Mon, process, Old, killed} -> ok end,
    true = py_test_util:wait_until(fun() ->
                                           is_pid(whereis(py_packages)) andalso whereis(py_packages) =/= Old
                                               andalso py_context_registry:pool_pid(1) =/= error
                                   end),
    Dir = new_dir(Config, "after_restart_"),
    Mod = unique("ep_after_restart_"),
    ok = file:write_file(filename:join(Dir, Mod ++ ".py"), "OK = True\n"),
    ok = py:add_path(Dir),
    {ok, true} = py:eval(Ctx, iolist_to_binary(["__import__('", Mod, "').OK"])),
    {ok, true} = py:eval(iolist_to_binary(["__import__('", Mod, "').OK"])),
    py_context:stop(Ctx),
    ok.

%% A context in the first of Modes this Python runs.
first_context([Mode | Rest]) ->
    case py_context:start_link(unique("ctx_"), Mode) of
        {ok, Ctx} -> {ok, Ctx};
        {error, _} -> first_context(Rest)
    end.
