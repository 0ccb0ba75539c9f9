%% A model trained, pickled and served by Erlang processes, each holding
%% the model in its own env (the seed's "stateful ML pipeline"). Needs
%% scikit-learn for the Python the NIF runs (Debian's python3-sklearn is
%% for 3.11: build with ERLANG_PYTHON=/usr/bin/python3); says so otherwise.
-module(ml_example).
-export([main/0]).

-spec main() -> ok | {skipped, string()}.
main() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    case py:eval(<<"__import__('importlib.util').util.find_spec('sklearn') is not None">>) of
        {ok, true} -> run();
        {ok, false} -> skipped("scikit-learn is not installed for this Python")
    end.

run() ->
    Model = filename:join(os:getenv("TMPDIR", "/tmp"), "ml_example_" ++ os:getpid() ++ ".pkl"),
    %% training: once, in this process's env
    ok = py:exec(<<"
import pickle
from sklearn.linear_model import LogisticRegression
def train(path):
    X = [[0.0, 0.1], [0.2, 0.0], [0.1, 0.3], [2.0, 2.1], [2.2, 1.9], [1.9, 2.3]]
    y = [0, 0, 0, 1, 1, 1]
    with open(path, 'wb') as f:
        pickle.dump(LogisticRegression().fit(X, y), f)
">>),
    {ok, none} = py:eval(<<"train(path)">>, #{path => list_to_binary(Model)}),
    %% serving: four processes, each loads the model into its own env
    Self = self(),
    Servers = [spawn_link(fun() -> serve(Model, Self) end) || _ <- lists:seq(1, 4)],
    Points = [[0.1, 0.2], [2.1, 2.0], [0.3, 0.1], [1.8, 2.2]],
    Answers = [begin S ! {predict, self(), P}, receive {S, Class} -> {P, Class} end end
               || {S, P} <- lists:zip(Servers, Points)],
    [S ! stop || S <- Servers],
    ok = file:delete(Model),
    [io:format("~-55s ~p~n", [io_lib:format("predict ~w", [P]), C]) || {P, C} <- Answers],
    ok.

serve(Model, Parent) ->
    ok = py:exec(<<"
import pickle
def load(path):
    global model
    with open(path, 'rb') as f:
        model = pickle.load(f)
def predict(features):
    return int(model.predict([features])[0])
">>),
    {ok, none} = py:call('__main__', load, [list_to_binary(Model)]),
    unlink(Parent),
    loop().

loop() ->
    receive
        {predict, From, Features} -> From ! {self(), element(2, py:call('__main__', predict, [Features]))}, loop();
        stop -> ok
    end.

skipped(Why) ->
    {ok, Version} = py:version(),
    Reason = lists:flatten(io_lib:format("~s (Python ~s)", [Why, hd(string:split(Version, " "))])),
    io:format("~-55s ~s~n", ["ML example", "skipped: " ++ Reason]),
    {skipped, Reason}.
