// A helper thread that raises exceptions in a subinterpreter's running code.
#pragma once

#include <Python.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ep {

// PyThreadState_SetAsyncExc only reaches threads of the interpreter the
// caller is attached to, so interrupting a subinterpreter context needs a
// thread state in that interpreter, on a thread that may wait for its GIL.
// Each subinterpreter context has one of these: its thread makes its own
// thread state there and, at the end, deletes it itself (a thread state
// deleted from another thread leaves that thread's PyGILState slot
// dangling, which valgrind showed as a use after free).
class Interrupter {
public:
    Interrupter() = default;
    Interrupter(const Interrupter&) = delete;
    Interrupter& operator=(const Interrupter&) = delete;
    ~Interrupter() { stop(); }

    bool start(PyInterpreterState* interp, std::string* error);

    // Any thread, never blocks. `job` runs attached to the interpreter;
    // while it returns true it runs again every 100 ms.
    void post(std::function<bool()> job);

    // The owner, holding no GIL, before the interpreter ends: the thread
    // deletes its thread state and exits; joins it.
    void stop();

private:
    void run();

    static constexpr auto kRepeatEvery = std::chrono::milliseconds(100);
    PyInterpreterState* interp_ = nullptr;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::function<bool()>> jobs_;
    bool stopping_ = false;
};

}  // namespace ep
