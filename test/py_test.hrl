%% Shared by the Common Test suites.

%% How long a test waits for something that must happen (a reply, a
%% message, a condition) before it calls it a hang. Only a failing test
%% waits this long, so it is generous: the suites pass unchanged on a
%% machine several times slower than this one, or with every core busy.
%% Nothing in the suites asserts how fast anything is; that is bench/'s job.
-define(PATIENCE, 60000).
