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
%% logs "disk full" as a warning. Messages over 64 KiB are cut. When records
%% arrive faster than they can be logged, the excess is dropped and counted,
%% and a warning says how many. Records made while the application starts,
%% before this process runs, are dropped.
-module(py_logger).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% Records waiting past this are dropped until the backlog halves.
-define(MAX_BACKLOG, 10000).
-define(REPORT_AFTER, 1000).

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
handle_info({py_log, LevelNo, Name, Message, Meta}, State)
  when is_integer(LevelNo), is_binary(Name), is_binary(Message), is_map(Meta) ->
    {message_queue_len, Backlog} = process_info(self(), message_queue_len),
    case State of
        #state{dropped = 0} when Backlog > ?MAX_BACKLOG ->
            %% the count is reported when the flood is over
            erlang:send_after(?REPORT_AFTER, self(), report_dropped),
            {noreply, State#state{dropped = 1}};
        #state{dropped = Dropped} when Dropped > 0, Backlog > ?MAX_BACKLOG div 2 ->
            {noreply, State#state{dropped = Dropped + 1}};
        _ ->
            log(LevelNo, Name, Message, Meta),
            {noreply, report_dropped(State)}
    end;
handle_info(report_dropped, #state{dropped = Dropped} = State) when Dropped > 0 ->
    {message_queue_len, Backlog} = process_info(self(), message_queue_len),
    case Backlog > ?MAX_BACKLOG div 2 of
        true ->
            erlang:send_after(?REPORT_AFTER, self(), report_dropped),
            {noreply, State};
        false ->
            {noreply, report_dropped(State)}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

report_dropped(#state{dropped = 0} = State) ->
    State;
report_dropped(#state{dropped = Dropped} = State) ->
    ?LOG_WARNING("py_logger: ~b Python log records dropped (arriving faster than logged)", [Dropped]),
    State#state{dropped = 0}.

log(LevelNo, Name, Message, Location) ->
    %% No `domain': OTP's default handler only shows events without one
    %% (or under [otp]); `python_logger' is there to filter on.
    Meta0 = case Location of
                #{file := File} when is_binary(File) ->
                    #{python_logger => Name, python_location => maps:with([file, line, function], Location)};
                _ ->  % a record of ours, not from Python code
                    #{python_logger => Name}
            end,
    Meta = case Location of
               #{caller := Pid} when is_pid(Pid) -> Meta0#{pid => Pid};
               _ -> Meta0
           end,
    %% The message as it is: no format string to expand in this process.
    logger:log(level(LevelNo), Message, Meta).

level(N) when N >= 50 -> critical;
level(N) when N >= 40 -> error;
level(N) when N >= 30 -> warning;
level(N) when N >= 20 -> info;
level(_) -> debug.
