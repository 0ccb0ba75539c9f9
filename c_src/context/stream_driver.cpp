#include "context/stream_driver.h"

#include "context/env.h"
#include "context/request_runner.h"
#include "context/stream.h"
#include "convert/py_to_term.h"
#include "erl/atoms.h"
#include "runtime/embedded_source.h"

#include <unistd.h>

namespace ep {
namespace {

// Async iterators advance one item per step in an asyncio loop of the
// context's thread.
const char* const kAsyncSteps = R"PY(
import asyncio, os

class AsyncSteps:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        # written (from C, by an interrupter) to bring the loop out of select()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.loop.add_reader(self.wake_r, self._drain)

    def _drain(self):
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass

    def run(self, awaitable):
        if self.loop.is_running():
            raise RuntimeError('an async generator streamed from inside the step of another one, '
                               'on the same context')
        task = asyncio.ensure_future(awaitable, loop=self.loop)
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
                except BaseException:
                    pass
            raise

    def next(self, iterator):
        return self.run(iterator.__anext__())

    def close(self, iterator):
        aclose = getattr(iterator, 'aclose', None)
        if aclose is not None:
            self.run(aclose())

    def shutdown(self):
        try:
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.remove_reader(self.wake_r)
            self.loop.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
)PY";

}  // namespace

bool StreamDriver::run(Request& req, const std::function<bool()>& others_waiting, RunResult* result) {
    Stream& stream = *req.stream;
    switch (req.op) {
    case Op::StreamStart:
        if (!start(req, result)) return false;
        return advance(req, others_waiting, result);
    case Op::StreamStep:
        return advance(req, others_waiting, result);
    default:  // StreamClose
        close(stream);
        return false;
    }
}

bool StreamDriver::start(Request& req, RunResult* result) {
    Stream& stream = *req.stream;
    if (stream.ended()) return false;  // cancelled before it ran
    if (req.ns->interpreter() != runner_.interpreter()) {
        *result = RunResult{RunResult::Failure, atoms::env_wrong_interpreter};
        return false;
    }
    PyRef globals = PyRef::borrow(req.ns->namespace_dict());
    if (!globals) {
        *result = runner_.python_error(req);
        return false;
    }
    PyObject* lookup = globals.get();
    PyRef fn = runner_.resolve(req, std::span<PyObject* const>(&lookup, 1), result);
    if (!fn) return false;
    PyRef value = runner_.call_function(req, fn.get(), result);
    if (!value) return false;
    // An async iterator (an async generator, say) runs in the private loop;
    // anything else iterable is iterated.
    if (PyObject_HasAttrString(value.get(), "__anext__")) {
        stream.set_iterator(value.release(), true);
        return true;
    }
    if (!PyObject_HasAttrString(value.get(), "__iter__") && PyObject_HasAttrString(value.get(), "__aiter__")) {
        PyRef it = PyRef::steal(PyObject_CallMethod(value.get(), "__aiter__", nullptr));
        if (!it) {
            *result = runner_.python_error(req);
            return false;
        }
        stream.set_iterator(it.release(), true);
        return true;
    }
    PyObject* it = PyObject_GetIter(value.get());
    if (it == nullptr) {
        *result = runner_.python_error(req);
        return false;
    }
    stream.set_iterator(it, false);
    return true;
}

bool StreamDriver::advance(Request& req, const std::function<bool()>& others_waiting, RunResult* result) {
    Stream& stream = *req.stream;
    ErlNifEnv* env = req.env.get();
    for (int n = 0;; ++n) {
        switch (stream.gate()) {
        case Stream::Gate::Stop:
            close(stream);
            return false;
        case Stream::Gate::Wait:
            return false;  // an ack queues the next step
        case Stream::Gate::Go:
            break;
        }
        if (stream.iterator() == nullptr) return false;  // closed by a cancel in between
        if (n >= kItemsPerStep || (n > 0 && others_waiting())) return true;
        bool exhausted = false;
        PyRef item = PyRef::steal(next_item(stream, &exhausted));
        if (!item) {
            if (exhausted) stream.end_done(env);
            else *result = runner_.python_error(req);
            close(stream);
            return false;
        }
        ERL_NIF_TERM term;
        bool deferred = false;
        if (!py_to_term(item.get(), env, runner_.scope(), &term, &deferred)) {
            *result = RunResult{RunResult::Failure, term};
            close(stream);
            return false;
        }
        if (!stream.send_item(env, term, deferred)) {
            close(stream);  // cancelled while the item was made
            return false;
        }
    }
}

PyObject* StreamDriver::next_item(Stream& stream, bool* exhausted) {
    PyObject* it = stream.iterator();
    if (!stream.is_async()) {
        PyObject* item = PyIter_Next(it);
        *exhausted = item == nullptr && !PyErr_Occurred();
        return item;
    }
    PyObject* steps = async_steps();
    PyObject* item = steps ? PyObject_CallMethod(steps, "next", "O", it) : nullptr;
    if (item == nullptr && PyErr_ExceptionMatches(PyExc_StopAsyncIteration)) {
        PyErr_Clear();
        *exhausted = true;
    }
    return item;
}

PyObject* StreamDriver::async_steps() {
    if (!steps_) {
        PyRef ns = run_embedded_source(kAsyncSteps);
        PyObject* cls = ns ? PyDict_GetItemString(ns.get(), "AsyncSteps") : nullptr;  // borrowed
        steps_ = cls ? PyRef::steal(PyObject_CallNoArgs(cls)) : PyRef();
        PyRef fd = steps_ ? PyRef::steal(PyObject_GetAttrString(steps_.get(), "wake_w")) : PyRef();
        long n = fd ? PyLong_AsLong(fd.get()) : -1;
        if (n < 0) PyErr_Clear();
        wake_fd_.store(static_cast<int>(n), std::memory_order_release);
    }
    return steps_.get();
}

void StreamDriver::close(Stream& stream) {
    // Let go of the env after the iterator: its finally still sees its globals.
    std::shared_ptr<Env> env = stream.release_env();
    PyRef it = PyRef::steal(stream.take_iterator());
    if (!it) return;
    // Whatever the iterator's clean-up raises stays here: the stream has
    // ended (or was cancelled) already.
    if (stream.is_async()) {
        PyObject* steps = async_steps();
        PyRef done = steps ? PyRef::steal(PyObject_CallMethod(steps, "close", "O", it.get())) : PyRef();
    } else if (PyObject_HasAttrString(it.get(), "close")) {
        PyRef done = PyRef::steal(PyObject_CallMethod(it.get(), "close", nullptr));
    }
    if (PyErr_Occurred()) PyErr_Clear();
}

void StreamDriver::wake() {
    // No Python here: code run on the interrupter thread right after
    // PyThreadState_SetAsyncExc could take the signal meant for the
    // context thread (seen: the exception then fired a second time, late).
    int fd = wake_fd_.load(std::memory_order_acquire);
    if (fd >= 0) {
        char byte = 1;
        ssize_t written = ::write(fd, &byte, 1);  // full pipe: it is awake anyway
        (void)written;
    }
}

void StreamDriver::clear() {
    wake_fd_.store(-1, std::memory_order_release);
    if (!steps_) return;
    // Async generators never closed (none, normally) get their aclose here.
    PyRef done = PyRef::steal(PyObject_CallMethod(steps_.get(), "shutdown", nullptr));
    if (!done) PyErr_Clear();
    steps_.reset();
}

}  // namespace ep
