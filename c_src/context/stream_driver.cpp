#include "context/stream_driver.h"

#include "context/env.h"
#include "context/request_runner.h"
#include "context/stream.h"
#include "convert/py_to_term.h"
#include "erl/atoms.h"

namespace ep {

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
    if (req.ns->interpreter() != stream.interpreter()) {
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
    PyRef awaitable = PyRef::steal(PyObject_CallMethod(it, "__anext__", nullptr));
    PyObject* item = awaitable ? run_awaitable(awaitable.get()) : nullptr;
    if (item == nullptr && PyErr_ExceptionMatches(PyExc_StopAsyncIteration)) {
        PyErr_Clear();
        *exhausted = true;
    }
    return item;
}

PyObject* StreamDriver::run_awaitable(PyObject* awaitable) {
    if (!loop_) {
        PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
        loop_ = asyncio ? PyRef::steal(PyObject_CallMethod(asyncio.get(), "new_event_loop", nullptr)) : PyRef();
        if (!loop_) return nullptr;
    }
    // A step of an async generator that made an Erlang call, whose function
    // streamed on this same context: this loop is busy under it.
    PyRef running = PyRef::steal(PyObject_CallMethod(loop_.get(), "is_running", nullptr));
    if (!running) return nullptr;
    if (PyObject_IsTrue(running.get())) {
        PyErr_SetString(PyExc_RuntimeError,
                        "an async generator streamed from inside another one's step on the same context");
        return nullptr;
    }
    return PyObject_CallMethod(loop_.get(), "run_until_complete", "O", awaitable);
}

void StreamDriver::close(Stream& stream) {
    PyRef it = PyRef::steal(stream.take_iterator());
    if (!it) return;
    // Whatever the iterator's clean-up raises stays here: the stream has
    // ended (or was cancelled) already.
    if (stream.is_async()) {
        if (PyObject_HasAttrString(it.get(), "aclose")) {
            PyRef closing = PyRef::steal(PyObject_CallMethod(it.get(), "aclose", nullptr));
            PyRef done = closing ? PyRef::steal(run_awaitable(closing.get())) : PyRef();
        }
    } else if (PyObject_HasAttrString(it.get(), "close")) {
        PyRef done = PyRef::steal(PyObject_CallMethod(it.get(), "close", nullptr));
    }
    if (PyErr_Occurred()) PyErr_Clear();
}

void StreamDriver::clear() {
    if (!loop_) return;
    PyRef closed = PyRef::steal(PyObject_CallMethod(loop_.get(), "close", nullptr));
    if (!closed) PyErr_Clear();
    loop_.reset();
}

}  // namespace ep
