%% @doc Python's `logging' into Erlang's `logger' (spec §8).
%%
%% Every interpreter's root logger has an `erlang.LogHandler', which sends
%% each record here; this process logs it with `logger' at the matching level
%% (`CRITICAL' critical, `ERROR' error, `WARNING' warning, `INFO' info, lower
%% debug), with metadata `python_logger' (the Python logger's name) and
%% `python_location' (file, line, function), and as `pid' the Erlang process
%% whose call logged it. Python
%% decides which records reach the handler (its root logger defaults to
%% `WARNING'); `logger''s levels and filters decide the rest.
%%
%% ```
%% ok = py:exec(<<"import logging\nlogging.getLogger('app').warning('disk %s', 'full')">>).
%% '''
%%
%% logs "disk full" as a warning. When records arrive faster than they can be
%% logged, the excess is dropped and counted, and a warning says how many.
-module(py_logger).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% Records waiting past this are dropped until the backlog halves.
-define(MAX_BACKLOG, 10000).

-record(state, {dropped = 0 :: non_neg_integer()}).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, #state{}}.
init([]) ->
    {ok, #state{}}.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, {error, unknown_call}, #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({py_log, LevelNo, Name, Message, Meta}, State) ->
    {message_queue_len, Backlog} = process_info(self(), message_queue_len),
    case State of
        #state{dropped = Dropped} when Backlog > ?MAX_BACKLOG;
                                       Dropped > 0, Backlog > ?MAX_BACKLOG div 2 ->
            {noreply, State#state{dropped = Dropped + 1}};
        #state{dropped = Dropped} ->
            Dropped > 0 andalso
                ?LOG_WARNING("py_logger: ~b Python log records dropped (arriving faster than logged)",
                             [Dropped]),
            log(LevelNo, Name, Message, Meta),
            {noreply, State#state{dropped = 0}}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

log(LevelNo, Name, Message, #{file := File, line := Line, function := Function, caller := Caller}) ->
    %% No `domain': OTP's default handler only shows events without one
    %% (or under [otp]); `python_logger' is there to filter on.
    Meta0 = #{python_logger => Name,
              python_location => #{file => File, line => Line, function => Function}},
    Meta = case Caller of
               Pid when is_pid(Pid) -> Meta0#{pid => Pid};
               undefined -> Meta0
           end,
    logger:log(level(LevelNo), "~ts", [Message], Meta).

level(N) when N >= 50 -> critical;
level(N) when N >= 40 -> error;
level(N) when N >= 30 -> warning;
level(N) when N >= 20 -> info;
level(_) -> debug.
