%% A Python-backed worker for the "Reset via Process Termination" pattern:
%% its Python state lives in its process-bound env.
-module(py_worker).
-behaviour(gen_server).
-export([start_link/0, set/1, get/0]).
-export([init/1, handle_call/3, handle_cast/2]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).
set(Value) -> gen_server:call(?MODULE, {set, Value}).
get() -> gen_server:call(?MODULE, get).

init([]) ->
    ok = py:exec(py:context(), <<"state = 'fresh'">>),
    {ok, #{}}.

handle_call({set, Value}, _From, State) ->
    {reply, py:eval(py:context(), <<"globals().__setitem__('state', v)">>, #{v => Value}), State};
handle_call(get, _From, State) ->
    {reply, py:eval(py:context(), <<"state">>), State}.

handle_cast(_Msg, State) -> {noreply, State}.
