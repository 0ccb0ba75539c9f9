"""The frames an isolated worker and its context process (src/py_isolated.erl)
exchange, and the exception the worker raises in user code it stops.

It talks to its context process (src/py_isolated.erl) over the port's pipe,
{packet, 4} frames on the fds it was started with. Frames from the VM are
<<Kind:8, Id:64, Payload/binary>>:

  1 request   Payload = <<Parent:64, term_to_binary({EnvId, Caller, Op})>>;
              Parent: the erlang.call whose Erlang function makes this
              request (0: none)
  2 cancel    the request Id: dropped if queued, interrupted if running
  3 drop_env  EnvId = Id: the env's namespace is released
  4 drop      the handle Id is released
  5 interrupt whatever runs now (py:interrupt/1), answered by an interrupted
              frame Id: whether something ran
  6 reply     to erlang.call Id: Payload = term_to_binary(Result)
  7 bind      handle Id is the VM's reference Payload = term_to_binary(Ref)
  8 info      answered with an info frame Id, by the reader thread: a busy
              main thread does not hold it up
  9 stream    start stream Id: Payload = <<Parent:64, Window:64,
              term_to_binary({EnvId, Caller, Op})>>, Op a call; Window 0:
              none. It starts in its turn, as a request.
 10 ack       stream Id: Payload = <<N:64>>, N more items may be sent
 11 close     stream Id: its generator is closed, nothing more is sent

Frames to the VM are <<Kind:8, Id:64, Payload/binary>> too:

  0 hello     Payload = {hello, Info}
  1 result    Payload = the answer term
  2 failure   Payload = {{error, {Type, Message}}, Traceback}
  3 output    Payload = {Stream, Text}, printed while serving request Id
  4 send      Payload = {Pid, Term}, from erlang.send (Id: its id, answered
              by a reply frame: whether the process was there)
  5 call      Payload = {Name, Args, Caller}, from erlang.call (Id: its id)
  6 log       Payload = {Level, Logger, Message, Path, Line, Function, Caller}
  7 result    as 1, holding handles: {Marker, HandleId} tuples
  8 info      Payload = #{envs => N, handles => N, busy => Bool}, for info
              request Id
  9 send      as 4, holding handles
 10 call      as 5, holding handles
 11 cancel    erlang.call Id: the Python code waiting for it was stopped
 12 interrupted  Payload = true | false, for interrupt request Id
 13 item      of stream Id: Payload = the item
 14 item      as 13, holding handles
 15 end       of stream Id: Payload = done | {error, Reason}
 16 failed    stream Id raised: Payload as in 2
"""
import struct

HEADER = struct.Struct(">BQ")  # Kind, Id
LENGTH = struct.Struct(">I")  # {packet, 4}
PARENT = struct.Struct(">Q")  # a request's Parent
STREAM_START_ARGS = struct.Struct(">QQ")  # a stream's Parent, Window

REQUEST, CANCEL, DROP_ENV, DROP, INTERRUPT, REPLY, BIND, INFO = 1, 2, 3, 4, 5, 6, 7, 8
STREAM_START, STREAM_ACK, STREAM_CANCEL = 9, 10, 11
HELLO, RESULT, FAILURE, OUTPUT, SEND, CALL, LOG, RESULT_WITH_HANDLES, INFO_REPLY = 0, 1, 2, 3, 4, 5, 6, 7, 8
SEND_WITH_HANDLES, CALL_WITH_HANDLES, CALL_CANCEL, INTERRUPTED = 9, 10, 11, 12
STREAM_ITEM, STREAM_ITEM_WITH_HANDLES, STREAM_END, STREAM_FAILED = 13, 14, 15, 16


class Interrupted(BaseException):
    """Raised inside Python code whose Erlang caller timed out, or that
    py:interrupt/1 stopped. A BaseException, so `except Exception` does not
    swallow it."""
