%% The supervisor of process-bound-envs.md's reset pattern, as written there.
-module(py_worker_sup).
-behaviour(supervisor).
-export([start_link/0, init/1, reset_worker/1]).

start_link() -> supervisor:start_link(?MODULE, []).

%% Supervise the Python actor
init([]) ->
Children = [
#{id => py_worker,
start => {py_worker, start_link, []},
restart => permanent}
],
{ok, {#{strategy => one_for_one}, Children}}.
%% To reset: just terminate and let supervisor restart
reset_worker(Sup) ->
ok = supervisor:terminate_child(Sup, py_worker),
{ok, _} = supervisor:restart_child(Sup, py_worker).
