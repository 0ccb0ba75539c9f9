"""Streams (spec §9) in erlang_python's isolated worker: the state of one
stream, the rule that makes an iterator of what the streamed function
returns, and the asyncio loop that async generators step in.

The worker (erlang_python_isolated.py) steps a stream on its main thread,
between requests, as a context thread does: a few items at a time, one
when requests are waiting, and never past its window (StreamServing, the
worker's stream methods).
"""
import erlang_python_etf as etf
from erlang_python_etf import Atom, ConversionError
from erlang_python_frames import (HEADER, STREAM_END, STREAM_FAILED, STREAM_ITEM, STREAM_ITEM_WITH_HANDLES,
                                  STREAM_START_ARGS, Interrupted)

ITEMS_PER_STEP = 64  # when nothing else waits for the main thread


class Stream:
    """One stream. `credit` (None: no window) and `cancelled` are shared
    with the reader thread, under the worker's lock; the rest is the main
    thread's."""

    __slots__ = ("ident", "caller", "parent", "credit", "cancelled", "env_id",
                 "iterator", "is_async", "running", "ready")

    def __init__(self, ident, caller, parent, window, env_id, iterator, is_async):
        self.ident = ident
        self.caller = caller
        self.parent = parent  # the erlang.call it was started in, or 0
        self.credit = window or None
        self.cancelled = False
        self.env_id = env_id
        self.iterator = iterator
        self.is_async = is_async
        self.running = False  # a step of it is on the stack
        self.ready = False  # in the worker's queue of streams to step

    def may_send(self):
        """Lock held."""
        return self.credit is None or self.credit > 0

    def acked(self, n):
        """Lock held."""
        if self.credit is not None:
            self.credit += n

    def sent(self):
        """Lock held."""
        if self.credit is not None:
            self.credit -= 1


def iterator_of(value):
    """(iterator, is_async) of what the function returned, as in-process:
    an async iterator runs in the private loop; anything else iterable is
    iterated. Raises TypeError for what is neither."""
    if hasattr(value, "__anext__"):
        return value, True
    if not hasattr(value, "__iter__") and hasattr(value, "__aiter__"):
        return value.__aiter__(), True
    return iter(value), False


class AsyncSteps:
    """The main thread's private asyncio loop: an async generator advances
    one item per step in it; while it awaits, the worker waits with it (an
    interrupt, a signal, still reaches it there)."""

    def __init__(self):
        import asyncio

        self.asyncio = asyncio
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable):
        if self.loop.is_running():
            raise RuntimeError("an async generator streamed from inside the step of another one, "
                               "on the same context")
        task = self.asyncio.ensure_future(awaitable, loop=self.loop)
        try:
            return self.loop.run_until_complete(task)
        except BaseException:
            # An interrupt lands in the loop's own code, not in the task: the
            # task is left half-way and its generator "already running".
            # Cancelled and settled, the generator can still be closed.
            if not task.done():
                task.cancel()
                try:
                    self.loop.run_until_complete(task)
                except BaseException:  # noqa: B902 - the first exception is the one told
                    pass
            raise

    def next(self, iterator):
        return self.run(iterator.__anext__())

    def close(self, iterator):
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            self.run(aclose())


class StreamServing:
    """The worker's stream methods, on its main thread. They use the
    worker's shared state (lock, queued, active, cancelled, streams, ready,
    env_streams) and its running(), run(), write(), fail(), handle()."""

    def stream_start(self, ident, frame):
        """Calls the streamed function and takes an iterator of what it
        returns; its first step comes in its turn. A failure ends the stream
        at once."""
        with self.lock:
            self.queued.discard(ident)
            if ident in self.cancelled:  # cancelled, or its owner gone, while it queued
                self.cancelled.discard(ident)
                return
            self.active.append(ident)
        outer_user_code = self.in_user_code
        self.in_user_code = False
        stream = None
        end = None
        try:
            parent, window = STREAM_START_ARGS.unpack_from(frame, HEADER.size)
            try:
                env_id, caller, op = etf.decode(frame[HEADER.size + STREAM_START_ARGS.size:], self.bound, -2)
                self.callers.append((ident, caller))
            except ConversionError as e:
                end = (Atom("error"), e.reason)
            except BaseException as e:  # noqa: B902 - every exception ends the stream
                end = e
            else:
                try:
                    try:
                        _, value = self.run(env_id, op)
                        iterator, is_async = iterator_of(value)  # __iter__ is user code too
                    finally:
                        self.in_user_code = False
                        self.callers.pop()
                except Interrupted:
                    end = (Atom("error"), Atom("interrupted"))
                except ConversionError as e:
                    end = (Atom("error"), e.reason)
                except BaseException as e:  # noqa: B902 - every exception ends the stream
                    end = e
                else:
                    stream = Stream(ident, caller, parent, window, env_id, iterator, is_async)
                    self.env_streams[env_id] = self.env_streams.get(env_id, 0) + 1
        finally:
            with self.lock:
                self.active.pop()
                if self.interrupt_target == ident:
                    self.interrupt_target = None
                cancelled = ident in self.cancelled
                self.cancelled.discard(ident)
                if stream is not None:
                    stream.cancelled = cancelled
                    self.streams[ident] = stream
            self.in_user_code = outer_user_code
        if stream is None:
            if not cancelled:
                self.end_stream(ident, end)
            return
        self.make_ready(stream)

    def make_ready(self, stream):
        """Queues a step of `stream` if it may send, or must close."""
        if stream.ready or stream.iterator is None:
            return
        with self.lock:
            go = stream.cancelled or stream.may_send()
        if go:
            stream.ready = True
            self.ready.append(stream)

    def next_ready(self):
        """The next stream to step now, or None. While the main thread
        waits in erlang.call, only streams started by that call's Erlang
        function are stepped, as requests are."""
        for _ in range(len(self.ready)):
            stream = self.ready.popleft()
            if stream.running or not self.may_run(stream.parent):
                self.ready.append(stream)
                continue
            stream.ready = False
            return stream
        return None

    def step(self, stream):
        """Sends the stream's next items: up to ITEMS_PER_STEP, one if
        anything else waits, none past its window."""
        if stream.cancelled:
            self.close_stream(stream)
            return
        stream.running = True
        ended = False
        try:
            with self.running(stream.ident, stream.caller):
                for n in range(ITEMS_PER_STEP):
                    with self.lock:
                        if stream.cancelled or not stream.may_send():
                            break
                    if n > 0 and (self.deferred or not self.inbox.empty()):
                        break
                    end = None
                    try:
                        try:
                            self.enter_user_code()
                            if stream.is_async:
                                item = self.async_loop().next(stream.iterator)
                            else:
                                item = next(stream.iterator)
                        finally:
                            self.in_user_code = False
                    except (StopIteration, StopAsyncIteration):
                        end = Atom("done")
                    except Interrupted:
                        end = (Atom("error"), Atom("interrupted"))
                    except BaseException as e:  # noqa: B902 - every exception ends the stream
                        end = e
                    if end is None:
                        end = self.send_item(stream, item)
                        del item
                    if end is not None:
                        self.end_stream(stream.ident, end)
                        ended = True
                        break
                    with self.lock:
                        stream.sent()
        finally:
            stream.running = False
        if ended or stream.cancelled:
            self.close_stream(stream)
        else:
            self.make_ready(stream)

    def send_item(self, stream, item):
        """Writes one item; None, or how the stream ends when the item has
        no Erlang form."""
        made = []
        encoder = etf.Encoder(lambda obj: self.handle(obj, made))
        try:
            payload = encoder.framed(encoder.encode(item, -1))
        except BaseException as e:  # noqa: B902 - a __len__ or __hash__ of the item raised
            for handle_id in made:
                self.handles.pop(handle_id, None)
            if isinstance(e, ConversionError):
                return (Atom("error"), e.reason)
            if isinstance(e, RecursionError):
                return (Atom("error"), Atom("nesting_too_deep"))
            return e
        self.write(STREAM_ITEM_WITH_HANDLES if encoder.handles_made else STREAM_ITEM, stream.ident, payload)
        return None

    def end_stream(self, ident, end):
        """done, (error, Reason), or the exception the stream raised."""
        if isinstance(end, BaseException):
            self.fail(ident, end, STREAM_FAILED)
        else:
            self.write(STREAM_END, ident, etf.Encoder(None).encode(end))

    def close_stream(self, stream):
        """Closes the generator here, on the main thread (its finally runs),
        and lets go of its env."""
        with self.lock:
            self.streams.pop(stream.ident, None)
        iterator, stream.iterator = stream.iterator, None
        if iterator is None:
            return
        with self.running(stream.ident, stream.caller):
            try:
                try:
                    self.enter_user_code()
                    if stream.is_async:
                        self.async_loop().close(iterator)
                    else:
                        close = getattr(iterator, "close", None)
                        if close is not None:
                            close()
                finally:
                    self.in_user_code = False
            except BaseException:  # noqa: B902 - the stream has ended: its clean-up's errors stay here
                pass
        del iterator
        self.flush_output()
        self.output_spent.pop(stream.ident, None)
        self.release_stream_env(stream.env_id)

    def async_loop(self):
        """The main thread's private asyncio loop, made when first needed."""
        if self.async_steps is None:
            self.async_steps = AsyncSteps()
        return self.async_steps
