#include "runtime/subinterpreter.h"


#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "erlang_module/callbacks.h"
#include "runtime/embedded_source.h"
#include "runtime/py_errors.h"
#include "runtime/py_ref.h"
#include "erlang_module/python_logging.h"

namespace ep {
namespace {

// Creating and destroying subinterpreters concurrently has crashed CPython
// (design.md fact 9): one at a time.
std::mutex lifecycle_mutex;

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
// 3.12 runs a single-phase extension module's PyInit inside an isolated
// subinterpreter before refusing it, which corrupts memory (gh-117953;
// design.md fact 10). A None in sys.modules makes the import fail cleanly
// first; datetime and decimal then fall back to their pure-Python versions.
// (The _test* ones and ossaudiodev were found single-phase with nm.)
constexpr const char* kSinglePhaseModules[] = {
    "_datetime", "pyexpat",       "_elementtree", "_decimal",     "_ctypes",    "readline",
    "_curses",   "_curses_panel", "_tkinter",     "ossaudiodev",  "_testcapi",  "_testbuffer",
    "_testclinic", "_testimportmultiple", "_testsinglephase", "_xxtestfuzz"};

// Extension modules outside the standard library may be single-phase too
// (numpy is), and nothing tells without running their PyInit: on 3.12 they
// are refused in subinterpreters with a clean ImportError.
constexpr const char* kExtensionGuard = R"py(
import sys, os, sysconfig
from importlib import machinery

def install():
    # The standard library's extension directory, as built and as it is now
    # (a relocated Python keeps the build-time path in sysconfig).
    stdlib = {os.path.realpath(sysconfig.get_config_var('DESTSHARED') or '')}
    for probe in ('_struct', 'select', '_json', 'math'):
        spec = machinery.PathFinder.find_spec(probe)
        if spec is not None and isinstance(spec.loader, machinery.ExtensionFileLoader):
            stdlib.add(os.path.dirname(os.path.realpath(spec.origin)))
            break

    class RefusingLoader:
        def __init__(self, name):
            self.name = name

        def create_module(self, spec):
            raise ImportError(
                f"{self.name} is a C extension outside the standard library; on Python 3.12 "
                "loading it in a subinterpreter can corrupt memory (CPython gh-117953): use a "
                "worker context, or Python 3.13", name=self.name)

        def exec_module(self, module):
            pass

    class ExtensionGuard:
        # Finds what PathFinder would, but hands out a loader that refuses;
        # find_spec itself never raises, so probing (importlib.util.find_spec)
        # still works.
        @staticmethod
        def find_spec(name, path=None, target=None):
            spec = machinery.PathFinder.find_spec(name, path, target)
            if spec is None or not isinstance(spec.loader, machinery.ExtensionFileLoader):
                return None
            if os.path.dirname(os.path.realpath(spec.origin)) in stdlib:
                return None
            return machinery.ModuleSpec(name, RefusingLoader(name), origin=spec.origin)

    # Before PathFinder, after the built-in and frozen importers.
    at = next((i for i, f in enumerate(sys.meta_path) if f is machinery.PathFinder), len(sys.meta_path))
    sys.meta_path.insert(at, ExtensionGuard)

install()
)py";

bool block_single_phase_modules() {
    PyObject* modules = PyImport_GetModuleDict();  // borrowed
    for (const char* name : kSinglePhaseModules)
        if (PyDict_SetItemString(modules, name, Py_None) < 0) return false;
    return static_cast<bool>(run_embedded_source(kExtensionGuard));
}
#endif

#if PY_VERSION_HEX >= 0x030C0000
// GIL of the new interpreter held.
bool prepare(Interpreter& interp, const std::vector<std::string>& extra_path, std::string* error) {
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    if (!block_single_phase_modules()) {
        *error = "could not block single-phase modules: " + take_python_error_text();
        return false;
    }
#endif
    if (!interp.load_erlang_module()) {
        *error = "could not load the erlang module: " + take_python_error_text();
        return false;
    }
    if (!install_log_handler()) {
        *error = "could not connect logging to Erlang: " + take_python_error_text();
        return false;
    }
    PyObject* sys_path = PySys_GetObject("path");  // borrowed
    for (auto it = extra_path.rbegin(); it != extra_path.rend(); ++it) {
        PyRef entry = PyRef::steal(PyUnicode_DecodeFSDefault(it->c_str()));
        if (!entry || !sys_path || PyList_Insert(sys_path, 0, entry.get()) < 0) {
            *error = "could not extend sys.path: " + take_python_error_text();
            return false;
        }
    }
    return true;
}

// threading registers a _DummyThread for a thread it did not start (ours,
// as soon as asyncio or logging asks for the current thread) and removes it
// from a thread-local's __del__. Run while the interpreter ends, that __del__
// finds the threading module torn down and prints a TypeError; let it run now.
constexpr const char* kForgetDummyThread = R"py(
import sys
threading = sys.modules.get('threading')
local = getattr(threading, '_thread_local_info', None)
if local is not None and hasattr(local, '_track_dummy_thread_ref'):
    del local._track_dummy_thread_ref
)py";

void forget_dummy_thread() {
    run_embedded_source(kForgetDummyThread);
    PyErr_Clear();
}
#endif
}  // namespace

bool owngil_supported() { return PY_VERSION_HEX >= 0x030C0000; }
bool shared_gil_subinterpreters_supported() { return PY_VERSION_HEX >= 0x030D0000; }

#if PY_VERSION_HEX >= 0x030C0000

bool create_subinterpreter(bool own_gil, const std::vector<std::string>& extra_path, Subinterpreter* out,
                           std::string* error) {
    if (!own_gil && !shared_gil_subinterpreters_supported()) {
        *error = "shared-GIL subinterpreters need Python 3.13";
        return false;
    }
    std::lock_guard lock(lifecycle_mutex);
    PyInterpreterConfig config{};
    config.use_main_obmalloc = 0;
    config.allow_fork = 0;
    config.allow_exec = 0;
    config.allow_threads = 1;
    config.allow_daemon_threads = 0;  // they would outlive Py_EndInterpreter
    config.check_multi_interp_extensions = 1;
    config.gil = own_gil ? PyInterpreterConfig_OWN_GIL : PyInterpreterConfig_SHARED_GIL;

    // Py_NewInterpreterFromConfig wants an attached thread state: a
    // temporary one in the main interpreter, deleted right after.
    PyThreadState* temp = PyThreadState_New(PyInterpreterState_Main());
    if (temp == nullptr) {
        *error = "PyThreadState_New failed";
        return false;
    }
    PyEval_RestoreThread(temp);
    PyThreadState* sub = nullptr;
    PyStatus status = Py_NewInterpreterFromConfig(&sub, &config);
    if (PyStatus_Exception(status)) {
        *error = std::string("Py_NewInterpreterFromConfig: ") + (status.err_msg ? status.err_msg : "failed");
        // The temporary state comes back attached with the main GIL, on 3.12
        // too for failures once the new interpreter exists (a failing site
        // import, say); it must go, or the main GIL stays held. (3.12's
        // early failures leave it without the GIL, gh-112723, but only an
        // invalid config or no memory cause those, and ours is valid.)
        PyThreadState_Clear(temp);
        PyThreadState_DeleteCurrent();
        return false;
    }
    // Now attached to `sub`; `temp` is detached. Drop `temp` (attached
    // once more, alone), then come back to `sub`.
    PyEval_SaveThread();
    PyEval_RestoreThread(temp);
    PyThreadState_Clear(temp);
    PyThreadState_DeleteCurrent();
    PyEval_RestoreThread(sub);

    auto interp = std::make_shared<Interpreter>(PyThreadState_GetInterpreter(sub), false);
    Interpreter::enlist(interp);
    if (!prepare(*interp, extra_path, error)) {
        interp->clear_erlang_module();
        interp->close();
        Py_EndInterpreter(sub);
        return false;
    }
    PyEval_SaveThread();
    out->tstate = sub;
    out->interp = std::move(interp);
    return true;
}



// Interrupts the interpreter's other Python threads (threading or _thread
// ones) until none is left or `grace` runs out. Attached to `sub`; lets go of
// the GIL while waiting so they can finish. True when only `sub` is left.
bool wind_down_threads(Subinterpreter& sub, std::chrono::milliseconds grace) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + grace;
    auto next_interrupt = Clock::now();
    for (;;) {
        std::vector<unsigned long> others;
        for (PyThreadState* t = PyInterpreterState_ThreadHead(sub.interp->state()); t != nullptr;
             t = PyThreadState_Next(t))
            if (t != sub.tstate) others.push_back(t->thread_id);
        if (others.empty()) return true;
        if (Clock::now() >= deadline) return false;
        if (Clock::now() >= next_interrupt) {
            abort_callbacks(sub.interp->state());
            for (unsigned long id : others) PyThreadState_SetAsyncExc(id, sub.interp->types().interrupted);
            next_interrupt = Clock::now() + std::chrono::milliseconds(250);
        }
        PyEval_SaveThread();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        PyEval_RestoreThread(sub.tstate);
    }
}

bool end_subinterpreter(Subinterpreter& sub) {
    // No new Erlang calls from it; threads waiting for one give up (again on
    // every round of the wind-down below).
    sub.interp->set_closing();
    abort_callbacks(sub.interp->state());
    PyEval_RestoreThread(sub.tstate);
    forget_dummy_thread();
    // Py_EndInterpreter aborts the process if another thread state is left
    // ("not the last thread") and joins threading's threads forever: stop
    // them first, and if they will not stop, leave the interpreter be.
    bool alone = wind_down_threads(sub, std::chrono::milliseconds(2000));
    if (sub.interp->has_pending_releases()) sub.interp->drain_releases();
    sub.interp->clear_erlang_module();
    sub.interp->close();  // later releases are dropped: their objects end with it
    if (!alone) {
        std::fprintf(stderr,
                     "erlang_python: a subinterpreter still runs Python threads that ignore interruption; "
                     "it is left running instead of ended\n");
        PyEval_SaveThread();
        sub.tstate = nullptr;
        return false;
    }
    PyEval_SaveThread();
    {
        std::lock_guard lock(lifecycle_mutex);
        PyEval_RestoreThread(sub.tstate);
        Py_EndInterpreter(sub.tstate);  // leaves no thread state attached
    }
    sub.tstate = nullptr;
    return true;
}

#else

bool create_subinterpreter(bool, const std::vector<std::string>&, Subinterpreter*, std::string* error) {
    *error = "subinterpreters with their own GIL need Python 3.12 or newer";
    return false;
}

bool end_subinterpreter(Subinterpreter&) { return true; }

#endif

}  // namespace ep
