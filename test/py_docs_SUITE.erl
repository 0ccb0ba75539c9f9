%% Runs every ```erlang block of the documentation, in order, in one
%% process per page, so the docs cannot drift from the product.
-module(py_docs_SUITE).
-include_lib("common_test/include/ct.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [getting_started].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

%% The packages section adds paths, a preload and a venv: later suites
%% get the interpreters back as they were.
end_per_suite(_Config) ->
    ok = py_test_util:restart_application(),
    py_test_util:stop().

getting_started(_Config) ->
    run_page("getting-started.md").

run_page(Name) ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Path = filename:join([filename:dirname(filename:dirname(Source)), "docs", Name]),
    {ok, Text} = file:read_file(Path),
    {match, Blocks0} = re:run(Text, "```erlang\\n(.*?)```", [global, dotall, {capture, all_but_first, binary}]),
    Blocks = [B || [B] <- Blocks0],
    true = length(Blocks) > 0,
    lists:foldl(fun run_block/2, erl_eval:new_bindings(), Blocks),
    ok.

run_block(Block, Bindings) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Block)),
    lists:foldl(fun(Form, Acc) ->
                        {ok, Exprs} = erl_parse:parse_exprs(Form),
                        try erl_eval:exprs(Exprs, Acc) of
                            {value, _, NewAcc} -> NewAcc
                        catch
                            Class:Reason:Stack ->
                                ct:fail({doc_example_failed, lists:flatten(erl_pp:exprs(Exprs)),
                                         {Class, Reason, Stack}})
                        end
                end, Bindings, split_dots(Tokens, [], [])).

split_dots([], [], Acc) -> lists:reverse(Acc);
split_dots([{dot, _} = Dot | Rest], Cur, Acc) -> split_dots(Rest, [], [lists:reverse([Dot | Cur]) | Acc]);
split_dots([T | Rest], Cur, Acc) -> split_dots(Rest, [T | Cur], Acc).
