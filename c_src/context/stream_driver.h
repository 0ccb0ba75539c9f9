// The Python side of streams, on a context thread with its GIL held:
// starting one (calling the function and taking an iterator of what it
// returns), sending its items a step at a time, closing it so its
// `finally` runs here. An async generator runs one item per step in an
// asyncio loop private to the thread: while it awaits, the context waits
// with it.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>

#include "context/request.h"
#include "runtime/py_ref.h"

namespace ep {

class RequestRunner;
class Stream;

class StreamDriver {
public:
    explicit StreamDriver(RequestRunner& runner) : runner_(runner) {}

    // Runs a stream request. True when the stream has more to send now (the
    // caller queues its next step); a failure the owner must hear of is
    // left in *result. `others_waiting` says whether other requests wait
    // for the thread: then a step yields after one item.
    bool run(Request& req, const std::function<bool()>& others_waiting, RunResult* result);
    // Closes the stream's iterator (a generator's `finally` runs) and drops it.
    void close(Stream& stream);
    // Drops the private loop; before the thread state goes away.
    void clear();
    // Any thread (an interrupter): makes the private loop leave select(),
    // so that an interrupt just raised in an async generator's step fires
    // now rather than at the loop's next event. Runs no Python.
    void wake();

private:
    static constexpr int kItemsPerStep = 64;

    bool start(Request& req, RunResult* result);
    bool advance(Request& req, const std::function<bool()>& others_waiting, RunResult* result);
    // The next item (new reference); nullptr with *exhausted, or with a
    // Python exception set.
    PyObject* next_item(Stream& stream, bool* exhausted);
    // The stepper of async iterators (made on the first one), or nullptr
    // with a Python exception set.
    PyObject* async_steps();

    RequestRunner& runner_;
    PyRef steps_;  // an AsyncSteps (see stream_driver.cpp): its loop is this thread's
    std::atomic<int> wake_fd_{-1};  // the write end of its wake-up pipe
};

}  // namespace ep
