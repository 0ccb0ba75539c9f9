%% @doc Venvs for the running Python (spec §12): reading one
%% ({@link inspect/1}) and making one with its requirements installed
%% ({@link ensure/3}). Activation itself is {@link py_packages}'.
%%
%% Nothing here goes through a shell: the venv module and pip are started
%% with argument lists, and requirements come after `--', so a requirement
%% string is only ever a requirement to pip, never an option or a command.
-module(py_venv).

-export([inspect/1, ensure/3, text/1]).

-define(MARKER, ".erlang_python_requirements").
-define(MAX_OUTPUT, 65536).

%% @doc What `py_packages' needs of venv `Dir': its path, Python version,
%% site-packages and whether it sees the base Python's site-packages.
-spec inspect(file:name_all()) -> {ok, map()} | {error, term()}.
inspect(Dir) ->
    case absolute(Dir) of
        {ok, Path} ->
            case file:read_file(filename:join(Path, "pyvenv.cfg")) of
                {ok, Cfg} -> inspect(Path, config(Cfg));
                {error, _} -> {error, {not_a_venv, Dir}}
            end;
        error ->
            {error, {badarg, Dir}}
    end.

inspect(Path, Cfg) ->
    Running = running_version(),
    case venv_version(Path, Cfg) of
        Running ->
            Site = filename:join([Path, "lib", <<"python", Running/binary>>, "site-packages"]),
            case filelib:is_dir(Site) of
                true ->
                    {ok, #{path => Path, version => Running, site_packages => [Site],
                           system_site_packages => maps:get(<<"include-system-site-packages">>, Cfg, <<"false">>) =:= <<"true">>}};
                false ->
                    {error, {no_site_packages, Site}}
            end;
        unknown ->
            {error, {venv_version_unknown, Path}};
        Other ->
            {error, {venv_python_mismatch, #{venv => Other, running => Running, path => Path}}}
    end.

%% "3.11" from pyvenv.cfg's version (venv) or version_info (virtualenv),
%% else from the one lib/pythonX.Y the venv has.
venv_version(Path, Cfg) ->
    Given = maps:get(<<"version">>, Cfg, maps:get(<<"version_info">>, Cfg, undefined)),
    case Given of
        undefined ->
            case filelib:wildcard("python3.*", binary_to_list(filename:join(Path, "lib"))) of
                ["python" ++ V] -> list_to_binary(V);
                _ -> unknown
            end;
        Version ->
            case binary:split(Version, <<".">>, [global]) of
                [Ma, Mi | _] -> <<Ma/binary, ".", Mi/binary>>;
                _ -> unknown
            end
    end.

running_version() ->
    case py_nif:runtime_info() of
        {ok, #{version_info := {Ma, Mi, _}}} -> iolist_to_binary(io_lib:format("~b.~b", [Ma, Mi]));
        {error, _} -> unknown_python  % Python did not start: no venv matches
    end.

config(Cfg) ->
    maps:from_list([{string:trim(K), string:trim(V)}
                    || Line <- binary:split(Cfg, [<<"\n">>, <<"\r\n">>], [global]),
                       [K, V] <- [binary:split(Line, <<"=">>)]]).

%% ---------------------------------------------------------------------------

%% @doc Makes venv `Dir' with the running Python's venv module if it is
%% missing, installs `Requirements' there with pip unless the marker left by
%% the last install says they are unchanged, then activates it.
-spec ensure(file:name_all(), [unicode:chardata()] | file:name_all(), map()) -> ok | {error, term()}.
ensure(Dir, Requirements, Opts) ->
    case {check_opts(Opts), absolute(Dir)} of
        {ok, {ok, Path}} ->
            case with_requirements(Requirements) of
                {ok, Reqs} -> ensure_in(Path, Reqs, Opts);
                {error, _} = Error -> Error
            end;
        {ok, error} ->
            {error, {badarg, Dir}};
        {{error, _} = Error, _} ->
            Error
    end.

check_opts(Opts) when is_map(Opts) ->
    case [K || {K, V} <- maps:to_list(Opts), not valid_opt(K, V)] of
        [] -> ok;
        [K | _] -> {error, {badarg, {option, K}}}
    end;
check_opts(_) ->
    {error, {badarg, options}}.

valid_opt(find_links, V) -> texts(links(V));
valid_opt(no_index, V) -> is_boolean(V);
valid_opt(index_url, V) -> text(V) =/= error;
valid_opt(extra_args, V) -> is_list(V) andalso texts(V);
valid_opt(system_site_packages, V) -> is_boolean(V);
valid_opt(_, _) -> false.

texts(L) -> is_list(L) andalso lists:all(fun(T) -> is_binary(text(T)) end, L).

%% find_links: one path or URL, or a list of them.
links(L) when is_binary(L) -> [L];
links([C | _] = L) when is_integer(C) -> [L];
links(L) when is_list(L) -> L;
links(_) -> error.

%% A list of requirement strings, or the path of a requirements file.
with_requirements(File) when is_binary(File) ->
    with_file(File);
with_requirements(Reqs) when is_list(Reqs) ->
    case io_lib:printable_unicode_list(Reqs) andalso Reqs =/= [] of
        true ->
            with_file(Reqs);
        false ->
            Bins = [text(R) || R <- Reqs],
            case lists:all(fun(B) -> is_binary(B) andalso B =/= <<>> end, Bins) of
                true ->
                    case [B || B <- Bins, vcs(B)] of
                        [] -> {ok, {list, Bins}};
                        [Vcs | _] -> {error, {vcs_requirement_refused, Vcs}}
                    end;
                false ->
                    {error, {badarg, requirements}}
            end
    end;
with_requirements(_) ->
    {error, {badarg, requirements}}.

with_file(File) ->
    Abs = unicode:characters_to_binary(filename:absname(File)),
    case file:read_file(Abs) of
        {ok, Contents} ->
            Lines = [string:trim(L) || L <- binary:split(Contents, [<<"\n">>, <<"\r\n">>], [global])],
            case [L || L <- Lines, vcs(L)] of
                [] -> {ok, {file, Abs, Contents}};
                [Vcs | _] -> {error, {vcs_requirement_refused, Vcs}}
            end;
        {error, Why} -> {error, {requirements_file, File, Why}}
    end.

%% One ensure at a time per venv: two would both make it and both run pip.
ensure_in(Path, Reqs, Opts) ->
    global:trans({{?MODULE, Path}, self()}, fun() -> ensure_locked(Path, Reqs, Opts) end, [node()], infinity).

ensure_locked(Path, Reqs, Opts) ->
    Exe = python_executable(),
    Hash = erlang:md5(term_to_binary({running_version(), requirement_terms(Reqs), Opts})),
    Marker = filename:join(Path, ?MARKER),
    Created = case filelib:is_regular(filename:join(Path, "pyvenv.cfg")) of
                  true -> ok;
                  false -> create(Exe, Path, base_pip(Exe), Opts)
              end,
    Installed = case {Created, file:read_file(Marker)} of
                    {ok, {ok, Hash}} ->
                        logger:info("ensure_venv ~ts: requirements unchanged, nothing to install", [Path]),
                        ok;
                    {ok, _} ->
                        install(Exe, Path, Reqs, Opts);
                    {Error, _} ->
                        Error
                end,
    case Installed of
        ok ->
            _ = file:write_file(Marker, Hash),
            py_packages:activate_venv(Path);
        {error, _} = Failed ->
            Failed
    end.

%% A requirement that makes pip run git, hg, svn or bzr: their command
%% lines are where pip's option injections have been (CVE-2023-5752), so
%% they are refused; install such a package from a wheel or a directory.
vcs(Req) ->
    binary:match(string:lowercase(Req), [<<"git+">>, <<"hg+">>, <<"svn+">>, <<"bzr+">>]) =/= nomatch.

requirement_terms({list, Bins}) -> Bins;
requirement_terms({file, Abs, Contents}) -> {Abs, Contents}.

create(Exe, Path, BasePip, Opts) ->
    Args = ["-m", "venv"]
        ++ ["--system-site-packages" || maps:get(system_site_packages, Opts, false) =:= true]
        ++ ["--without-pip" || BasePip]
        ++ [Path],
    logger:info("ensure_venv ~ts: creating the venv with ~ts", [Path, Exe]),
    case run(Exe, Args, Path) of
        {0, _} -> ok;
        {_, Output} -> {error, {venv_failed, Output}}
    end.

install(_Exe, _Path, {list, []}, _Opts) ->
    ok;
install(Exe, Path, Reqs, Opts) ->
    VenvPython = filename:join([Path, "bin", "python"]),
    %% A venv made with ensurepip has its own pip; else the base's serves.
    HasPip = filelib:wildcard("lib/python3.*/site-packages/pip", binary_to_list(Path)) =/= [],
    {Program, Pip} = case not HasPip andalso base_pip(Exe) of
                         true -> {Exe, ["-m", "pip", "--python", VenvPython]};
                         false -> {VenvPython, ["-m", "pip"]}
                     end,
    Args = Pip ++ ["install", "--disable-pip-version-check", "--no-input"]
        ++ index_args(Opts)
        ++ [text(A) || A <- maps:get(extra_args, Opts, [])]
        ++ case Reqs of
               {file, File, _} -> ["-r", File];
               {list, _} -> []
           end
        ++ ["--" | case Reqs of {list, Bins} -> Bins; _ -> [] end],
    logger:info("ensure_venv ~ts: installing with pip", [Path]),
    case run(Program, Args, Path) of
        {0, _} -> ok;
        {_, Output} -> {error, {pip_failed, Output}}
    end.

index_args(Opts) ->
    Links = links(maps:get(find_links, Opts, [])),
    lists:append([["--find-links", text(Link)] || Link <- Links])
        ++ ["--no-index" || maps:get(no_index, Opts, false) =:= true]
        ++ case maps:get(index_url, Opts, undefined) of
               undefined -> [];
               Url -> ["--index-url", text(Url)]
           end.

python_executable() ->
    {ok, #{executable := Exe}} = py_nif:runtime_info(),
    binary_to_list(Exe).

%% The base Python's own pip can install into a venv made without one
%% (`--python', pip 22.3+), which saves the seconds ensurepip takes.
base_pip(Exe) ->
    case run(Exe, ["-m", "pip", "--version"], quiet) of
        {0, <<"pip ", Rest/binary>>} ->
            case binary:split(Rest, [<<".">>, <<" ">>], [global]) of
                [Ma, Mi | _] ->
                    try {binary_to_integer(Ma), binary_to_integer(Mi)} >= {22, 3}
                    catch error:badarg -> false
                    end;
                _ -> false
            end;
        _ ->
            false
    end.

%% Runs Program with Args (no shell), each output line logged as it comes;
%% the exit status and the output (its last 64 KiB).
run(Program, Args, Label) ->
    try open_port({spawn_executable, Program},
                  [{args, Args}, exit_status, stderr_to_stdout, binary, {line, 4096}, hide,
                   {env, [{"PIP_NO_INPUT", "1"}, {"PIP_DISABLE_PIP_VERSION_CHECK", "1"}]}]) of
        Port ->
            %% no {'EXIT', Port, normal} for a caller that traps exits
            unlink(Port),
            collect(Port, Label, [])
    catch
        error:Why -> {cannot_run, iolist_to_binary(io_lib:format("~ts: ~p", [Program, Why]))}
    end.

collect(Port, Label, Acc) ->
    receive
        {Port, {data, {Eol, Line}}} ->
            Eol =:= eol andalso Label =/= quiet andalso logger:info("ensure_venv ~ts: ~ts", [Label, Line]),
            Sep = case Eol of eol -> <<"\n">>; noeol -> <<>> end,
            collect(Port, Label, [Sep, Line | Acc]);
        {Port, {exit_status, Status}} ->
            Output = iolist_to_binary(lists:reverse(Acc)),
            Size = byte_size(Output),
            {Status, binary:part(Output, max(0, Size - ?MAX_OUTPUT), min(Size, ?MAX_OUTPUT))}
    end.

absolute(Dir) ->
    case text(Dir) of
        Bin when is_binary(Bin), Bin =/= <<>> -> {ok, unicode:characters_to_binary(filename:absname(Bin))};
        _ -> error
    end.

%% @doc A path, requirement or name (a binary or a string) as UTF-8, or
%% `error' for anything else; shared with py_packages.
-spec text(term()) -> binary() | error.
text(Bin) when is_binary(Bin) -> Bin;
text(List) when is_list(List) ->
    try unicode:characters_to_binary(List) of
        Bin when is_binary(Bin) -> Bin;
        _ -> error
    catch
        error:badarg -> error
    end;
text(_) -> error.
