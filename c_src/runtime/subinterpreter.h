// Subinterpreters for subinterp and owngil contexts (PEP 684), made and
// ended on the context thread that owns them. docs/dev/subinterpreters-research.md
// has the measurements behind each step.
#pragma once

#include <Python.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/interpreter.h"

namespace ep {

struct Subinterpreter {
    PyThreadState* tstate = nullptr;  // the owning thread's; detached when returned
    std::shared_ptr<Interpreter> interp;
};

// True when this Python can run owngil contexts (3.12+).
bool owngil_supported();
// True when this Python can run subinterp contexts (3.13+). On 3.12 a thread
// of another interpreter waiting for the shared GIL cannot preempt a
// subinterpreter that runs Python (measured here: a worker call waited the
// whole 2.8 s of a busy subinterpreter, and its interrupts would wait
// as long), so shared-GIL subinterpreters are refused there.
bool shared_gil_subinterpreters_supported();

// Called on a thread that holds no GIL. Makes an isolated subinterpreter
// (its own module state and allocator) with its own GIL or sharing the main
// one, and prepares it: the erlang module, the extra sys.path entries, and on
// 3.12 the single-phase extension modules blocked (see the notes). Creation
// and ending are serialised process-wide (design.md fact 9).
bool create_subinterpreter(bool own_gil, const std::vector<std::string>& extra_path, Subinterpreter* out,
                           std::string* error);

// Called on the thread that created it, holding no GIL, after its
// interrupter has stopped: interrupts the interpreter's other Python threads
// and waits for them (2 s at most), lets go of every object of ours in it and
// ends it. If threads are still running it leaves the interpreter alive
// (leaked) rather than abort the process, and returns false.
bool end_subinterpreter(Subinterpreter& sub);

}  // namespace ep
