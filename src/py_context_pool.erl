%% @doc The application's pool of contexts: `num_contexts' (default: the
%% number of schedulers) contexts in `context_mode' (default `worker').
-module(py_context_pool).
-behaviour(supervisor).

-export([start_link/0, size/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc How many contexts the pool has.
-spec size() -> non_neg_integer().
size() ->
    persistent_term:get({?MODULE, size}, 0).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    N = application:get_env(erlang_python, num_contexts, erlang:system_info(schedulers)),
    Mode = application:get_env(erlang_python, context_mode, worker),
    StopTimeout = application:get_env(erlang_python, stop_timeout, 5000),
    %% persistent_term writes make every process be scanned: only when needed.
    persistent_term:get({?MODULE, size}, undefined) =:= N orelse persistent_term:put({?MODULE, size}, N),
    persistent_term:get({?MODULE, next}, undefined) =/= undefined orelse
        persistent_term:put({?MODULE, next}, atomics:new(1, [])),
    %% an isolated pool's python, venv, memory_limit, env and cd (spec §11)
    Opts = case Mode of
               isolated -> maps:merge(application:get_env(erlang_python, isolated_options, #{}), #{pool => true});
               _ -> #{pool => true}
           end,
    Children = [#{id => {py_context, I},
                  start => {py_context, start_link, [I, Mode, Opts]},
                  shutdown => StopTimeout + 1000}
                || I <- lists:seq(1, N)],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, Children}}.
