%% A pool spread over two nodes: this one and a peer started here, each
%% running erlang_python in its own OS process. Callers use the contexts of
%% both alike (spec §13); print() on the peer shows here.
-module(dist_example).
-export([main/0]).

-spec main() -> [{node(), integer()}].
main() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    ok = ensure_distributed(),
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(?MODULE),
                                         args => ["-pa", filename:dirname(code:which(py))]}),
    try
        {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
        Pool = [py:context(1), py:context(2), erpc:call(Node, py, context, [1]), erpc:call(Node, py, context, [2])],
        %% every caller defines its work on each context, in its own env there
        Work = <<"import os\n"
                 "def work(n):\n"
                 "    print(f'  work({n}) in OS process {os.getpid()}')\n"
                 "    return sum(i * i for i in range(n))\n">>,
        [ok = py:exec(Ctx, Work) || Ctx <- Pool],
        %% eight calls at once, round robin over the four contexts
        Jobs = lists:zip(lists:seq(1, 8), lists:append(Pool, Pool)),
        Refs = [{node(Ctx), py:spawn_call(Ctx, '__main__', work, [100000 * I], #{})} || {I, Ctx} <- Jobs],
        Results = [{Where, Value} || {Where, Ref} <- Refs, {ok, Value} <- [py:await(Ref)]],
        [io:format("~-40s ~b~n", [atom_to_list(Where), Value]) || {Where, Value} <- Results],
        Results
    after
        peer:stop(Peer)
    end.

%% Distribution needs a node name and epmd; a node already named keeps its own.
ensure_distributed() ->
    case is_alive() of
        true ->
            ok;
        false ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start([list_to_atom("dist_example_" ++ os:getpid()), shortnames]),
            ok
    end.
