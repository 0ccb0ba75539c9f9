%% The module matrix of docs/module-matrix.md, checked row by row against
%% the Python this runs on, in every mode: the doc is the expectation.
-module(py_modules_SUITE).
-include_lib("common_test/include/ct.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [worker, subinterp, owngil].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    {ok, #{version_info := {Ma, Mi, _}}} = py_nif:runtime_info(),
    [{python, lists:flatten(io_lib:format("~b.~b", [Ma, Mi]))}, {matrix, read_matrix()} | Config].

end_per_suite(_Config) ->
    py_test_util:stop().

worker(Config) -> check_mode(worker, Config).
subinterp(Config) -> check_mode(subinterp, Config).
owngil(Config) -> check_mode(owngil, Config).

check_mode(Mode, Config) ->
    Column = ?config(python, Config) ++ " " ++ atom_to_list(Mode),
    Rows = [{Module, proplists:get_value(Column, Outcomes), Use} || {Module, Outcomes, Use} <- ?config(matrix, Config)],
    case [O || {_, O, _} <- Rows, O =:= undefined] of
        [] -> ok;
        _ -> ct:fail({column_missing_from_docs, Column})
    end,
    case lists:usort([O || {_, O, _} <- Rows]) of
        ["refused"] ->
            {error, {_, Why}} = py_context:start_link(matrix, Mode),
            {comment, "refused by this Python, as documented: " ++ Why};
        _ ->
            {ok, Ctx} = py_context:start_link(matrix, Mode),
            Failures = [{Module, Expected, Got} || {Module, Expected, Use} <- Rows,
                                                  Got <- [outcome(Ctx, Module, Use)], Got =/= Expected],
            ok = py_context:stop(Ctx),
            [] = Failures,
            {comment, io_lib:format("~b modules as documented", [length(Rows)])}
    end.

outcome(Ctx, Module, Use) ->
    case py:exec(Ctx, iolist_to_binary(["import ", Module])) of
        ok ->
            case py:eval(Ctx, Use) of
                {ok, true} -> "works";
                Other -> {unexpected, Other}
            end;
        {error, {Type, _}} when Type =:= 'ImportError'; Type =:= 'ModuleNotFoundError' -> "ImportError";
        Other -> {unexpected, Other}
    end.

%% [{Module, [{Column, Outcome}], UseExpression}] from the markdown table.
read_matrix() ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Path = filename:join([filename:dirname(filename:dirname(Source)), "docs", "module-matrix.md"]),
    {ok, Text} = file:read_file(Path),
    Lines = [L || L <- binary:split(Text, <<"\n">>, [global]), binary:match(L, <<"| ">>) =:= {0, 2}],
    [Header, _Separator | Body] = [cells(L) || L <- Lines],
    [_ | Columns] = lists:droplast(Header),
    [begin
         [Module | Rest] = Row,
         Outcomes = lists:droplast(Rest),
         Use = string:trim(lists:last(Rest), both, "`"),
         {Module, lists:zip(Columns, Outcomes), list_to_binary(Use)}
     end || Row <- Body].

cells(Line) ->
    Parts = binary:split(Line, <<"|">>, [global]),
    [string:trim(binary_to_list(P)) || P <- lists:sublist(Parts, 2, length(Parts) - 2)].
