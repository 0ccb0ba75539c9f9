"""Streams (spec §9) in erlang_python's isolated worker: the state of one
stream, the rule that makes an iterator of what the streamed function
returns, and the asyncio loop that async generators step in.

The worker (erlang_python_isolated.py) steps a stream on its main thread,
between requests, as a context thread does: a few items at a time, one
when requests are waiting, and never past its window.
"""


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
