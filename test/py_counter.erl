%% The "Basic Actor Pattern" of process-bound-envs.md, as written there
%% (Python indentation restored).
-module(py_counter).
-behaviour(gen_server).
-export([start_link/0, increment/1, decrement/1, get/1]).
-export([init/1, handle_call/3, handle_cast/2]).
start_link() ->
gen_server:start_link(?MODULE, [], []).
increment(Pid) -> gen_server:call(Pid, increment).
decrement(Pid) -> gen_server:call(Pid, decrement).
get(Pid) -> gen_server:call(Pid, get).
init([]) ->
Ctx = py:context(),
ok = py:exec(Ctx, <<"
class Counter:
    def __init__(self):
        self.value = 0
    def increment(self):
        self.value += 1
        return self.value
    def decrement(self):
        self.value -= 1
        return self.value
    def get(self):
        return self.value
counter = Counter()
">>),
{ok, #{ctx => Ctx}}.
handle_call(increment, _From, #{ctx := Ctx} = State) ->
{ok, Value} = py:eval(Ctx, <<"counter.increment()">>),
{reply, Value, State};
handle_call(decrement, _From, #{ctx := Ctx} = State) ->
{ok, Value} = py:eval(Ctx, <<"counter.decrement()">>),
{reply, Value, State};
handle_call(get, _From, #{ctx := Ctx} = State) ->
{ok, Value} = py:eval(Ctx, <<"counter.get()">>),
{reply, Value, State}.
handle_cast(_Msg, State) ->
{noreply, State}.
