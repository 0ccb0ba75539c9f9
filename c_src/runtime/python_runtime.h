// The embedded CPython as a whole: starting it (once, never finalised) and
// the service thread that does main-interpreter chores for threads that may
// not take the GIL themselves.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/interpreter.h"

namespace ep {

class Interrupter;

struct RuntimeOptions {
    std::string home;        // PyConfig.home: where the stdlib lives (design.md fact 2)
    std::string executable;  // sys.executable, for subprocess and multiprocessing
    std::vector<std::string> extra_path;  // prepended to sys.path
};

struct RuntimeInfo {
    std::string version;  // Py_GetVersion()
    std::string executable;
    std::string home;
    int major = 0, minor = 0, micro = 0;
};

// Starts Python on a dedicated service thread. Blocks until Python is up
// (or failed). Safe to call once per OS process; later calls return the
// first outcome.
bool start_python(const RuntimeOptions& options, std::string* error);

// Valid after start_python succeeded.
const std::shared_ptr<Interpreter>& main_interpreter();
const RuntimeInfo& runtime_info();
const RuntimeOptions& runtime_options();

// The thread that raises interrupts in worker contexts' code (it needs the
// main GIL, which a scheduler thread must never wait for).
Interrupter& main_interrupter();

}  // namespace ep
