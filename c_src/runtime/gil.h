// Holding and letting go of an interpreter's GIL through a long-lived
// thread state (design.md fact 7: never create a thread state per call).
#pragma once

#include <Python.h>

namespace ep {

// Attaches `tstate` (and so takes its interpreter's GIL) for this scope.
class GilHold {
public:
    explicit GilHold(PyThreadState* tstate) { PyEval_RestoreThread(tstate); }
    GilHold(const GilHold&) = delete;
    GilHold& operator=(const GilHold&) = delete;
    ~GilHold() { PyEval_SaveThread(); }
};

// Lets go of the GIL the current thread holds for this scope, e.g. while it
// blocks on a queue.
class GilRelease {
public:
    GilRelease() : tstate_(PyEval_SaveThread()) {}
    GilRelease(const GilRelease&) = delete;
    GilRelease& operator=(const GilRelease&) = delete;
    ~GilRelease() { PyEval_RestoreThread(tstate_); }

private:
    PyThreadState* tstate_;
};

}  // namespace ep
