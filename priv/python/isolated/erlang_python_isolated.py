"""erlang_python's isolated worker (spec §11): an isolated context's Python.

It talks to its context process (src/py_isolated.erl) over the port's pipe,
{packet, 4} frames on the fds it was started with (erlang_python_frames.py).

Requests run one at a time on the main thread, as on a context thread, and
streams are stepped between them (erlang_python_stream.py). A
reader thread takes frames off the pipe meanwhile, so a cancel reaches the
running code, replies reach Python threads that wait in erlang.call, and
end of file (the VM closed the port, or went) ends the process.

A cancel or interrupt raises Interrupted in the main thread only while it
runs user code (worker_user_code): never while the worker writes a frame or
an answer. One that comes while the worker's own code runs waits for the
user code to resume.
"""
import collections
import contextlib
import io
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import traceback
import types

import erlang_python_etf as etf
from erlang_python_etf import Atom, ConversionError, Pid, Ref
from erlang_python_frames import (BIND, CALL, CALL_CANCEL, CALL_WITH_HANDLES, CANCEL, DROP, DROP_ENV, FAILURE, HEADER,
                                  HELLO, INFO, INFO_REPLY, INTERRUPT, INTERRUPTED, LENGTH, LOG, OUTPUT, PARENT, REPLY,
                                  REQUEST, RESULT, RESULT_WITH_HANDLES, SEND, SEND_WITH_HANDLES, STREAM_ACK,
                                  STREAM_CANCEL, STREAM_START, Interrupted)
from erlang_python_stream import StreamServing

# What one request may print, as in-process: each write costs its bytes and
# a message's worth more; past the bound the rest is dropped, with a note.
OUTPUT_BOUND = 16 << 20
OUTPUT_MESSAGE_COST = 256
OUTPUT_CUT_NOTE = "\n[erlang_python: output of this call past 16 MiB dropped]\n"
_WAKE = -1  # in the inbox only: a reply came for the main thread
MAX_CALL_NESTING = 100  # erlang.call inside erlang.call inside ...


_GONE = object()


class Error(Exception):
    """A registered Erlang function failed. str() is the formatted Erlang
    reason; .kind is 'error', 'exit' or 'throw'; .reason the reason itself
    (None if it has no Python form)."""


class Worker(StreamServing):
    def __init__(self, fd_in, fd_out):
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.write_lock = threading.Lock()
        self.inbox = queue.Queue()
        self.envs = {}
        self.handles = {}  # handle id -> object
        self.bound = {}  # the VM's reference for a handle -> object
        self.refs = {}  # handle id -> the VM's reference
        self.handle_ids = itertools.count(1)
        self.marker = b""
        # What the reader thread and the main thread share, under one lock:
        self.lock = threading.Lock()
        self.replied = threading.Condition(self.lock)
        self.queued = set()  # request ids in the inbox, not yet started
        self.active = []  # request ids running, innermost (the running one) last
        self.cancelled = set()  # queued or outer active requests to stop
        self.replies = {}  # call id -> reply payload
        self.abandoned = set()  # call ids whose waiting request was stopped
        self.interrupt_target = None
        self.in_user_code = False
        self.callers = []  # (request id, caller pid), innermost last
        self.waiting = []  # erlang.call ids the main thread waits for, innermost last
        self.deferred = []  # requests that wait for the main thread to be free
        self.call_ids = itertools.count(1)
        self.main_ident = threading.get_ident()
        # Streams: the dict is shared with the reader thread (under the lock);
        # the rest is the main thread's.
        self.streams = {}  # stream id -> Stream
        self.ready = collections.deque()  # streams that may send or must close
        self.env_streams = {}  # env id -> streams running in it
        self.dropped_envs = {}  # env id -> namespace dropped while streams use it
        self.async_steps = None
        self.outputs = []  # sys.stdout and sys.stderr, once set
        self.output_spent = {}  # request or stream id -> its output's cost so far

    # -- the pipe -----------------------------------------------------------

    def write(self, kind, ident, payload):
        if kind != OUTPUT and threading.get_ident() == self.main_ident:
            self.flush_output()  # what was printed comes before what follows it
        frame = HEADER.pack(kind, ident) + payload
        data = LENGTH.pack(len(frame)) + frame
        # a frame is written whole: an interrupt waits until it is out
        user_code = threading.get_ident() == self.main_ident and self.in_user_code
        self.in_user_code = False if user_code else self.in_user_code
        try:
            with self.write_lock:
                view = memoryview(data)
                while view:
                    written = os.write(self.fd_out, view)
                    view = view[written:]
        finally:
            if user_code:
                self.enter_user_code()

    def flush_output(self, but=None):
        """Main thread: the text sys.stdout and sys.stderr hold, out now."""
        for out in self.outputs:
            if out is not but and out.pending:
                out.flush()

    def output(self, ident, stream, text):
        """Main thread: text printed while serving `ident`, to its caller,
        within the request's bound."""
        data = text.encode("utf-8", "backslashreplace")  # lone surrogates escaped
        spent = self.output_spent.get(ident, 0)
        cost = len(data) + OUTPUT_MESSAGE_COST
        if spent + cost > OUTPUT_BOUND:
            if spent <= OUTPUT_BOUND:  # the first write past it: the note, once
                self.output_spent[ident] = OUTPUT_BOUND + 1
                note = OUTPUT_CUT_NOTE.encode("ascii")
                self.write(OUTPUT, ident, etf.Encoder(None).encode((Atom("stderr"), note)))
            return
        self.output_spent[ident] = spent + cost
        self.write(OUTPUT, ident, etf.Encoder(None).encode((stream, data)))

    def reader(self):
        buf = bytearray()
        try:
            while True:
                while len(buf) < 4:
                    chunk = os.read(self.fd_in, 65536)
                    if not chunk:
                        return
                    buf += chunk
                n = LENGTH.unpack_from(buf)[0]
                while len(buf) < 4 + n:
                    chunk = os.read(self.fd_in, max(65536, 4 + n - len(buf)))
                    if not chunk:
                        return
                    buf += chunk
                frame = bytes(buf[4:4 + n])
                del buf[:4 + n]
                self.take(frame)
        finally:
            # The VM has gone or closed the port: nobody is left to serve.
            os._exit(0)

    def take(self, frame):
        """A frame from the VM, on the reader thread."""
        kind, ident = HEADER.unpack_from(frame)
        if kind == REQUEST or kind == STREAM_START:
            with self.lock:
                self.queued.add(ident)
            self.inbox.put((kind, ident, frame))
        elif kind == STREAM_ACK:
            with self.lock:
                stream = self.streams.get(ident)
                if stream is not None:
                    stream.acked(PARENT.unpack_from(frame, HEADER.size)[0])
            self.inbox.put((_WAKE, ident, None))
        elif kind == STREAM_CANCEL:
            with self.lock:
                stream = self.streams.get(ident)
                if stream is not None:
                    stream.cancelled = True
                elif ident in self.queued or ident in self.active:
                    self.cancelled.add(ident)  # its start has not registered it yet
            self.inbox.put((_WAKE, ident, None))
        elif kind == CANCEL:
            with self.lock:
                if self.active and self.active[-1] == ident:
                    self.interrupt(ident)
                elif ident in self.queued or ident in self.active:
                    # queued: dropped when its turn comes; an outer request
                    # waiting in erlang.call: stopped when it resumes
                    self.cancelled.add(ident)
                # else it has answered already: nothing to stop
        elif kind == INTERRUPT:
            with self.lock:
                running = bool(self.active)
                if running:
                    self.interrupt(self.active[-1])
            self.write(INTERRUPTED, ident, etf.Encoder(None).encode(running))
        elif kind == REPLY:
            with self.replied:
                if ident in self.abandoned:
                    self.abandoned.discard(ident)
                    return
                self.replies[ident] = frame[HEADER.size:]
                self.replied.notify_all()
            self.inbox.put((_WAKE, ident, None))
        elif kind == INFO:
            # the counts include what waits in the inbox to be dropped
            with self.lock:
                streams = len(self.streams)
            counts = {Atom("envs"): len(self.envs) + len(self.dropped_envs), Atom("handles"): len(self.handles),
                      Atom("busy"): bool(self.active), Atom("streams"): streams}
            self.write(INFO_REPLY, ident, etf.Encoder(self.handle).encode(counts))
        else:
            self.inbox.put((kind, ident, frame))

    def interrupt(self, ident):
        self.interrupt_target = ident
        signal.pthread_kill(self.main_ident, signal.SIGUSR1)
        # a main thread waiting for an erlang.call reply looks at the target
        self.inbox.put((_WAKE, ident, None))

    def on_signal(self, signum, frame):
        if self.in_user_code:
            self.raise_if_interrupted()
        # else the worker's own code runs: enter_user_code() raises it

    def enter_user_code(self):
        self.in_user_code = True
        self.raise_if_interrupted()

    def raise_if_interrupted(self):
        target = self.interrupt_target
        if target is not None and self.active and target == self.active[-1]:
            self.interrupt_target = None
            raise Interrupted("interrupted")

    # -- serving ------------------------------------------------------------

    def serve(self, until=None):
        """Runs what comes, on the main thread; with `until`, returns that
        erlang.call's reply once it comes (what comes meanwhile is served:
        a request the Erlang function makes runs at once, nested; others
        wait, as on a context thread, so nesting is only as deep as the
        calls are). Not user code: a frame taken off the inbox is always
        served; a cancel of the request that waits here is looked for
        between frames (it wakes the inbox)."""
        user_code, self.in_user_code = self.in_user_code, False
        if until is not None:
            self.waiting.append(until)
        try:
            while True:
                if until is None and self.deferred:
                    self.start(*self.deferred.pop(0))
                    continue
                if until is not None and self.waiting_one_stopped(until):
                    raise Interrupted("interrupted")
                if until is not None:
                    with self.lock:
                        if until in self.replies:
                            return self.replies.pop(until)
                stream = self.next_ready()
                if stream is None:
                    self.serve_one(*self.inbox.get())
                    continue
                # a step, then one frame if one waits: streams and requests
                # take turns
                self.step(stream)
                try:
                    frame = self.inbox.get_nowait()
                except queue.Empty:
                    continue
                self.serve_one(*frame)
        finally:
            if until is not None:
                self.waiting.pop()
            self.in_user_code = user_code

    def waiting_one_stopped(self, call):
        """Whether the request waiting for `call` was cancelled or
        interrupted; its reply, if one comes, is then dropped."""
        with self.lock:
            if not self.active:
                return False
            waiting = self.active[-1]
            stop = waiting in self.cancelled or self.interrupt_target == waiting
            if stop:
                self.cancelled.discard(waiting)
                self.interrupt_target = None
                if self.replies.pop(call, None) is None:
                    self.abandoned.add(call)
        if stop:  # its Erlang runner stops too
            self.write(CALL_CANCEL, call, b"")
        return stop

    def serve_one(self, kind, ident, frame):
        if kind == REQUEST or kind == STREAM_START:
            parent = PARENT.unpack_from(frame, HEADER.size)[0]
            if self.may_run(parent):
                self.start(kind, ident, frame)
            else:
                self.deferred.append((kind, ident, frame))
        elif kind == _WAKE:
            stream = self.streams.get(ident)
            if stream is not None:
                self.make_ready(stream)
        elif kind == DROP_ENV:
            ns = self.envs.pop(ident, None)
            if ns is not None:
                if self.env_streams.get(ident):
                    # a generator still runs in it: its globals stay until it closes
                    self.dropped_envs[ident] = ns
                else:
                    _empty_namespace(ns)
        elif kind == DROP:
            self.handles.pop(ident, None)
            self.bound.pop(self.refs.pop(ident, None), None)
        elif kind == BIND:
            obj = self.handles.get(ident, _GONE)
            if obj is not _GONE:
                ref = frame[HEADER.size + 1:]
                self.refs[ident] = ref
                self.bound[ref] = obj

    def may_run(self, parent):
        """Whether what was made in erlang.call `parent` (0: none) may run
        now: always, unless the main thread waits in erlang.call; then only
        what that call's Erlang function makes."""
        return not self.waiting or (parent and parent in self.waiting)

    def start(self, kind, ident, frame):
        if kind == REQUEST:
            self.request(ident, frame)
        else:
            self.stream_start(ident, frame)

    def request(self, ident, frame):
        with self.lock:
            self.queued.discard(ident)
            if ident in self.cancelled:  # its caller gave up while it queued
                self.cancelled.discard(ident)
                return
            self.active.append(ident)
        outer_user_code = self.in_user_code
        self.in_user_code = False
        try:
            self.answer(ident, self.outcome(ident, frame))
        finally:
            self.output_spent.pop(ident, None)
            with self.lock:
                self.active.pop()
                self.cancelled.discard(ident)
                if self.interrupt_target == ident:
                    self.interrupt_target = None
            self.in_user_code = outer_user_code

    def outcome(self, ident, frame):
        """The answer to a request: a term, or the exception it raised."""
        try:
            env_id, caller, op = etf.decode(frame[HEADER.size + PARENT.size:], self.bound, -2)
        except ConversionError as e:
            return (Atom("error"), e.reason)
        except BaseException as e:  # noqa: B902 - every exception is an answer
            return e
        self.callers.append((ident, caller))
        try:
            try:
                return self.run(env_id, op)
            finally:
                self.in_user_code = False
                self.callers.pop()
        except Interrupted:
            return (Atom("error"), Atom("interrupted"))
        except ConversionError as e:
            return (Atom("error"), e.reason)
        except BaseException as e:  # noqa: B902 - every exception is an answer
            return e

    def answer(self, ident, result):
        if isinstance(result, BaseException):
            self.fail(ident, result)
            return
        made = []
        encoder = etf.Encoder(lambda obj: self.handle(obj, made))
        try:
            payload = encoder.framed(encoder.encode(result, -1))
        except BaseException as e:  # noqa: B902 - a __len__ or __hash__ of the result raised
            # the handles made for an answer that is not sent are dropped
            for handle_id in made:
                self.handles.pop(handle_id, None)
            if isinstance(e, ConversionError):
                payload = etf.Encoder(None).encode((Atom("error"), e.reason))
            elif isinstance(e, RecursionError):
                payload = etf.Encoder(None).encode((Atom("error"), Atom("nesting_too_deep")))
            else:
                self.fail(ident, e)
                return
            self.write(RESULT, ident, payload)
            return
        self.write(RESULT_WITH_HANDLES if encoder.handles_made else RESULT, ident, payload)

    def fail(self, ident, exc, kind=FAILURE):
        self.write(kind, ident, self.failure(exc))

    def failure(self, exc):
        name = type(exc).__name__
        if isinstance(exc, Interrupted):
            name = "Interrupted"
        try:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        except BaseException:  # noqa: B902 - a broken __str__ still answers
            text = name + "\n"
        try:
            message = str(exc)
        except BaseException:  # noqa: B902 - a broken __str__ still answers
            message = "<exception str() failed>"
        # the class name as text: the VM makes it an atom if it may (the
        # budget of new atoms), as in-process
        return etf.Encoder(self.handle).encode(((Atom("error"), (name, message)), text))

    def handle(self, obj, made=None):
        ident = next(self.handle_ids)
        self.handles[ident] = obj
        if made is not None:
            made.append(ident)
        return b"h\x02" + self.marker + etf._int(ident)

    # -- what streams share with requests (erlang_python_stream.py) ---------

    @contextlib.contextmanager
    def running(self, ident, caller):
        """Runs request or stream `ident` for `caller` on the main thread:
        interrupts and output go to it meanwhile; user code is entered
        anew inside."""
        with self.lock:
            self.active.append(ident)
        self.callers.append((ident, caller))
        outer_user_code = self.in_user_code
        self.in_user_code = False
        try:
            yield
        finally:
            self.callers.pop()
            with self.lock:
                self.active.pop()
                if self.interrupt_target == ident:
                    self.interrupt_target = None
            self.in_user_code = outer_user_code

    def release_stream_env(self, env_id):
        """A stream running in env `env_id` has closed: a namespace dropped
        while it ran is emptied once no stream uses it."""
        left = self.env_streams.get(env_id, 1) - 1
        if left:
            self.env_streams[env_id] = left
        else:
            self.env_streams.pop(env_id, None)
            ns = self.dropped_envs.pop(env_id, None)
            if ns is not None:
                _empty_namespace(ns)

    # -- the operations -----------------------------------------------------

    def env(self, env_id):
        ns = self.envs.get(env_id)
        if ns is None:
            ns = {"__builtins__": __builtins__, "__name__": "__main__"}
            self.envs[env_id] = ns
        return ns

    def run(self, env_id, op):
        """Runs op: all of it is user code (imports and properties run
        module code), so an interrupt stops it wherever it is."""
        self.enter_user_code()
        name = op[0]
        if name == "exec":
            code = compile(_text(op[1]), "<string>", "exec")
            exec(code, self.env(env_id))
            return Atom("ok")
        if name == "eval":
            ns = self.env(env_id)
            code = compile(_text(op[1]), "<string>", "eval")
            bindings = {_name(k): v for k, v in op[2].items()}
            # Bound as globals for the expression's duration, as the NIF
            # does: comprehensions and lambdas see them on every version.
            missing = object()
            saved = [(k, ns.get(k, missing)) for k in bindings]
            ns.update(bindings)
            try:
                    value = eval(code, ns)
            finally:
                self.in_user_code = False
                for k, old in saved:
                    if old is missing:
                        ns.pop(k, None)
                    else:
                        ns[k] = old
            return (Atom("ok"), value)
        if name == "call" or name == "call_main":
            _, module, function, args, kwargs = op
            target = self.find(env_id, None if name == "call_main" else _name(module), _name(function))
            return (Atom("ok"), target(*args, **{_name(k): v for k, v in kwargs.items()}))
        if name == "getattr":
            return (Atom("ok"), getattr(op[1], _name(op[2])))
        if name == "call_method":
            _, obj, method, args, kwargs = op
            return (Atom("ok"), getattr(obj, _name(method))(*args, **{_name(k): v for k, v in kwargs.items()}))
        if name == "to_term":
            return (Atom("ok"), _unwrap(op[1]))
        if name == "buffer":
            return _buffer(op[1])
        raise ConversionError((Atom("badarg"), Atom("operation")))

    def find(self, env_id, module, function):
        """module.function, as the NIF finds it: "path.join" walks
        attributes; no module (the atom '__main__') is the caller's env,
        then the real __main__, then builtins."""
        first, *rest = function.split(".")
        if module is None:
            ns = self.env(env_id)
            if first in ns:
                target = ns[first]
            else:
                import __main__
                import builtins
                target = getattr(__main__, first, _GONE)
                if target is _GONE:
                    target = getattr(builtins, first, _GONE)
                if target is _GONE:
                    raise NameError("name %r is not defined" % (first,))
        else:
            import importlib
            target = getattr(sys.modules.get(module) or importlib.import_module(module), first)
        for part in rest:
            target = getattr(target, part)
        return target

    # -- erlang.* -----------------------------------------------------------

    def caller(self):
        if threading.get_ident() != self.main_ident or not self.callers:
            return None, None
        return self.callers[-1]

    def wait_reply(self, call):
        """The reply to erlang.call or erlang.send `call`. The main thread
        serves what comes meanwhile (a nested call from Erlang runs at
        once); another thread just waits."""
        if threading.get_ident() == self.main_ident:
            return self.serve(until=call)
        with self.replied:
            while call not in self.replies:
                self.replied.wait()
            return self.replies.pop(call)

    def message(self, what, term):
        """(payload, whether it holds handles) of a term Python sends to
        Erlang; the errors are the NIF's."""
        encoder = etf.Encoder(self.handle)
        try:
            return encoder.framed(encoder.encode(term, -1)), encoder.handles_made
        except ConversionError as e:
            reason = e.reason
            if isinstance(reason, tuple) and reason[0] == "duplicate_key":
                raise ValueError("%s: two keys of one dict become the same Erlang term" % what) from None
            raise TypeError("%s: cannot be sent to Erlang: %r" % (what, reason)) from None

    def erlang_call(self, name, *args):
        if threading.get_ident() == self.main_ident and len(self.waiting) >= MAX_CALL_NESTING:
            # raised here, in user code: deeper, Python's C stack limit could
            # strike in the worker's own code, between a frame and its answer
            raise RecursionError("erlang.call: nested more than %d deep" % MAX_CALL_NESTING)
        _, caller = self.caller()
        call = next(self.call_ids)
        payload, handles = self.message("erlang.call", (_name(name), list(args), caller))
        self.write(CALL_WITH_HANDLES if handles else CALL, call, payload)
        reply = etf.decode(self.wait_reply(call), self.bound, -1)
        if reply[0] == "ok":
            return reply[1]
        _, kind, reason, text = reply
        err = Error(text)
        err.kind = kind
        err.reason = reason
        raise err

    def erlang_send(self, pid, term):
        if not isinstance(pid, (Pid, Atom)):
            raise TypeError("erlang.send: the destination must be an erlang.Pid or an erlang.Atom")
        # a name goes as text, {Name}: no atom is made for one nobody has
        to = (str.__str__(pid),) if isinstance(pid, Atom) else pid
        payload, handles = self.message("erlang.send", (to, term))
        call = next(self.call_ids)
        self.write(SEND_WITH_HANDLES if handles else SEND, call, payload)
        delivered = etf.decode(self.wait_reply(call))
        if delivered is False:
            raise ProcessLookupError("erlang.send: no process %r" % (pid,))
        if delivered is not True:  # the VM could not read it: {error, Text}
            raise TypeError("erlang.send: %s" % (delivered[1],))

    def erlang_self(self):
        _, caller = self.caller()
        if caller is None:
            raise RuntimeError("erlang.self: no Erlang process is being served")
        return caller


def _buffer(obj):
    """py:buffer/1: the bytes and layout of an object with a buffer, copied
    once, with the NIF's errors."""
    try:
        view = memoryview(obj)
    except TypeError:
        return (Atom("error"), Atom("not_a_buffer"))
    with view:
        if not view.c_contiguous:
            return (Atom("error"), Atom("not_contiguous"))
        if view.nbytes > etf.MAX_RESULT_BYTES:
            return (Atom("error"), (Atom("result_too_large"), etf.MAX_RESULT_BYTES))
        return (Atom("ok"), {Atom("data"): view.tobytes(), Atom("format"): view.format,
                             Atom("itemsize"): view.itemsize, Atom("shape"): list(view.shape)})


def _empty_namespace(ns):
    """Empties a dropped env, as the NIF does: functions defined there hold
    it through __globals__, so its objects go now, not at the next cycle
    collection; newest names first, like a stack unwinding, so a __del__
    still finds the imports and classes defined before it."""
    for name in reversed(list(ns)):
        try:
            del ns[name]
        except BaseException:  # noqa: B902 - a __del__ that raises, or an interrupt
            pass
    ns.clear()


def _text(code):
    if isinstance(code, bytes):
        return code.decode("utf-8")
    return code


def _name(value):
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise ConversionError((Atom("badarg"), Atom("name")))


def _unwrap(obj):
    """py:to_term/1: a container's items, where the object is one."""
    if isinstance(obj, (set, frozenset, range, type({}.keys()), type({}.values()))):
        return list(obj)
    if isinstance(obj, types.MappingProxyType):
        return dict(obj)
    return obj


class _Output(io.TextIOBase):
    """sys.stdout / sys.stderr: text printed while serving a request goes to
    that request's caller; text from elsewhere to the VM's standard error.
    Line-buffered, as a terminal's stdout is: a line goes out whole, and
    whatever is pending goes out before any other frame the worker writes
    (an answer, an erlang.call), so it stays ahead of them."""

    def __init__(self, worker, stream, fallback):
        io.TextIOBase.__init__(self)
        self.worker = worker
        self.stream = Atom(stream)
        self.fallback = fallback
        self.pending = []
        self.pending_ident = None

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "backslashreplace"

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        ident, _ = self.worker.caller()
        if ident is None:
            os.write(self.fallback, text.encode("utf-8", "backslashreplace"))
            return len(text)
        if text:
            if self.pending_ident != ident:
                self.flush()
            self.worker.flush_output(self)  # the other stream's text first
            self.pending_ident = ident
            self.pending.append(text)
            if "\n" in text:
                self.flush()
        return len(text)

    def flush(self):
        if self.pending:
            text, ident = "".join(self.pending), self.pending_ident
            self.pending, self.pending_ident = [], None
            self.worker.output(ident, self.stream, text)

    def isatty(self):
        return False

    def writable(self):
        return True


class _ToLogger(logging.Handler):
    """Python logging records to Erlang's logger."""

    def __init__(self, worker):
        logging.Handler.__init__(self)
        self.worker = worker

    def emit(self, record):
        try:
            payload = etf.Encoder(self.worker.handle).encode(
                (record.levelno, record.name, self.format(record), record.pathname,
                 record.lineno, record.funcName or "", self.worker.caller()[1]))
            self.worker.write(LOG, 0, payload)
        except Exception:  # noqa: B902 - logging must never raise
            self.handleError(record)


def _erlang_module(worker):
    module = types.ModuleType("erlang", "Erlang from an isolated context's Python.")
    module.Pid, module.Ref, module.Atom = Pid, Ref, Atom
    module.Error, module.Interrupted, module.Buffer = Error, Interrupted, etf.Buffer
    module.call = worker.erlang_call
    module.send = worker.erlang_send
    module.self = worker.erlang_self

    def whereis(name):
        if not isinstance(name, str):
            raise TypeError("erlang.whereis: a name is an erlang.Atom or a str")
        # as text: no atom is made for a name no process has
        return worker.erlang_call("_py_whereis", str.__str__(name))

    module.whereis = whereis

    def attr(name):
        # registered Erlang functions, as the VM knows them now
        if name.startswith("__") or not worker.erlang_call("_py_registered", name):
            raise AttributeError("module 'erlang' has no attribute %r" % (name,))
        return lambda *args: worker.erlang_call(name, *args)

    module.__getattr__ = attr
    return module


def main():
    # The pipe is ours alone: fds 0 and 1 move aside, so a C extension that
    # writes to stdout cannot break a frame (its text goes to stderr).
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    worker = Worker(fd_in, fd_out)
    sys.stdout = _Output(worker, "stdout", 2)
    sys.stderr = _Output(worker, "stderr", 2)
    worker.outputs = [sys.stdout, sys.stderr]
    sys.modules["erlang"] = _erlang_module(worker)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    signal.signal(signal.SIGUSR1, worker.on_signal)
    logging.getLogger().addHandler(_ToLogger(worker))

    hello = _read_hello(fd_in)
    etf.LOCAL_NODE[0] = hello["node"]
    worker.marker = hello["marker"]
    info = {Atom("version"): sys.version, Atom("executable"): sys.executable,
            Atom("version_info"): tuple(sys.version_info[:3]), Atom("pid"): os.getpid(),
            Atom("prefix"): sys.prefix}
    worker.write(HELLO, 0, etf.Encoder(worker.handle).encode((Atom("hello"), info)))
    threading.Thread(target=worker.reader, name="erlang_python reader", daemon=True).start()
    try:
        worker.serve()
    finally:
        os._exit(0)


def _read_hello(fd):
    """The context's first frame: {Node, Marker}, the VM's node name and the
    handle marker, in external form."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                os._exit(0)
            data += chunk
        return data

    n = LENGTH.unpack(exactly(4))[0]
    frame = exactly(n)
    node, marker = etf.decode(frame)
    return {"node": node.encode("utf-8") if isinstance(node, str) else node,
            "marker": bytes(marker)}
