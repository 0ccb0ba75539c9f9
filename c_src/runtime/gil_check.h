// Run-time check of GIL discipline: Python references are only dropped by
// threads that hold a GIL.
#pragma once

#include <Python.h>

#include <cstdint>

namespace ep {

// True when this thread has an attached thread state, i.e. holds the GIL of
// some interpreter. A thread that let go with PyEval_SaveThread has none.
inline bool holds_gil() {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked() != nullptr;
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyThreadState_UncheckedGet() != nullptr;  // thread-local since 3.12
#else
    // Before 3.12 the "current thread state" is process-wide; compare it with
    // this thread's own (main interpreter only, which is all 3.11 runs).
    return PyGILState_Check() != 0;
#endif
}

// Records a reference that was about to be touched without the GIL. The
// reference is leaked instead (a leak is survivable, a refcount race is
// not); the count is exposed by py_nif:runtime_info() and the test suites
// require it to stay at zero.
void note_gil_violation(const char* where);
std::uint64_t gil_violations();

}  // namespace ep
