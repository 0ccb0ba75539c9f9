%% @doc Top supervisor: the context registry (contexts register with it),
%% what every interpreter gets (py_packages),
%% the pool of contexts, the Erlang-function registry, the asyncio event
%% loop, the relay of Python's log records, and the relay of messages and
%% output (py_relay).
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Children = [
        %% Messages the NIF cannot send itself (maps only a scheduler may
        %% build, remote pids) and Python output for callers that do not
        %% wait in receive. First: with rest_for_one, no other child's
        %% restart takes it, and the answers in its mailbox, down.
        #{id => py_relay,
          start => {py_relay, start_link, []},
          type => worker},
        #{id => py_context_registry,
          start => {py_context_registry, start_link, []},
          type => worker},
        %% Before the pool: each context joins it as it starts.
        #{id => py_packages,
          start => {py_packages, start_link, []},
          type => worker},
        #{id => py_context_pool,
          start => {py_context_pool, start_link, []},
          type => supervisor,
          shutdown => infinity},
        %% Last: with rest_for_one, their restarts touch nothing else.
        #{id => py_callbacks,
          start => {py_callbacks, start_link, []},
          type => worker},
        %% Proxies for callers on other nodes (spec §13).
        #{id => py_remote,
          start => {py_remote, start_link, []},
          type => worker},
        #{id => py_event_loop,
          start => {py_event_loop, start_link, []},
          type => worker},
        %% Python log records made before it runs (while the pool starts)
        %% are dropped; placed anywhere earlier, its restart would restart
        %% everything after it.
        #{id => py_logger,
          start => {py_logger, start_link, []},
          type => worker}
    ],
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, Children}}.
