%% The "Stateful ML Pipeline" of process-bound-envs.md, as written there
%% (Python indentation restored).
-module(ml_predictor).
-behaviour(gen_server).
-export([start_link/1, predict/2]).
-export([init/1, handle_call/3, terminate/2]).
start_link(ModelPath) ->
gen_server:start_link(?MODULE, ModelPath, []).
predict(Pid, Features) ->
gen_server:call(Pid, {predict, Features}).
init(ModelPath) ->
Ctx = py:context(),
%% Define functions and load model - stored in process-bound environment
ok = py:exec(Ctx, <<"
import pickle
_model = None
def load_model(path):
    global _model
    with open(path, 'rb') as f:
        _model = pickle.load(f)
    return True
def predict(features):
    return _model.predict([features]).tolist()[0]
">>),
%% Load model - it's stored in _model global within this process's env
{ok, true} = py:call(Ctx, '__main__', load_model, [ModelPath]),
{ok, #{ctx => Ctx}}.
handle_call({predict, Features}, _From, #{ctx := Ctx} = State) ->
{ok, Result} = py:call(Ctx, '__main__', predict, [Features]),
{reply, {ok, Result}, State}.
terminate(_Reason, _State) ->
%% Python environment automatically cleaned up
ok.
