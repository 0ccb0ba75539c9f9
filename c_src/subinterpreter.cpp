#include "subinterpreter.h"

#include <mutex>

#include "py_errors.h"
#include "py_ref.h"

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
constexpr const char* kSinglePhaseModules[] = {"_datetime", "pyexpat", "_elementtree", "_decimal",
                                               "_ctypes",   "readline", "_curses",     "_curses_panel",
                                               "_tkinter"};

// Extension modules outside the standard library may be single-phase too
// (numpy is), and nothing tells without running their PyInit: on 3.12 they
// are refused in subinterpreters with a clean ImportError.
constexpr const char* kExtensionGuard = R"py(
import sys, os, sysconfig
from importlib import machinery

def install(dynload=sysconfig.get_config_var('DESTSHARED') or ''):
    dynload = os.path.realpath(dynload)

    class ExtensionGuard:
        @staticmethod
        def find_spec(name, path=None, target=None):
            spec = machinery.PathFinder.find_spec(name, path, target)
            if spec is None or not isinstance(spec.loader, machinery.ExtensionFileLoader):
                return None
            if os.path.dirname(os.path.realpath(spec.origin)) == dynload:
                return None
            raise ImportError(
                f"{name} is a C extension outside the standard library; on Python 3.12 loading "
                "it in a subinterpreter can corrupt memory (CPython gh-117953): use a worker "
                "context, or Python 3.13", name=name)

    sys.meta_path.insert(0, ExtensionGuard)

install()
)py";

bool block_single_phase_modules() {
    PyObject* modules = PyImport_GetModuleDict();  // borrowed
    for (const char* name : kSinglePhaseModules)
        if (PyDict_SetItemString(modules, name, Py_None) < 0) return false;
    PyRef globals = PyRef::steal(PyDict_New());
    if (!globals || PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) < 0) return false;
    PyRef done = PyRef::steal(PyRun_String(kExtensionGuard, Py_file_input, globals.get(), globals.get()));
    return static_cast<bool>(done);
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
    PyRef globals = PyRef::steal(PyDict_New());
    if (globals && PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) == 0) {
        PyRef done = PyRef::steal(PyRun_String(kForgetDummyThread, Py_file_input, globals.get(), globals.get()));
    }
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
        // 3.13 hands the temporary state back attached. 3.12 may not hold
        // its GIL any more (gh-112723): leak it rather than touch it.
#if PY_VERSION_HEX >= 0x030D0000
        PyThreadState_Clear(temp);
        PyThreadState_DeleteCurrent();
#endif
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

void end_subinterpreter(Subinterpreter& sub) {
    std::lock_guard lock(lifecycle_mutex);
    // The interrupt service may hold (or wait for) this interpreter's GIL
    // with its own thread state: take that state away first, holding no GIL,
    // then delete it with the GIL. Py_EndInterpreter aborts the process if
    // any thread state but the caller's is left.
    PyThreadState* service = sub.interp->close_service_thread_state();
    PyEval_RestoreThread(sub.tstate);
    if (service != nullptr) {
        PyThreadState_Clear(service);
        PyThreadState_Delete(service);
    }
    forget_dummy_thread();
    if (sub.interp->has_pending_releases()) sub.interp->drain_releases();
    sub.interp->clear_erlang_module();
    sub.interp->close();  // later releases are dropped: their objects end with it
    Py_EndInterpreter(sub.tstate);  // leaves no thread state attached
    sub.tstate = nullptr;
}

#else

bool create_subinterpreter(bool, const std::vector<std::string>&, Subinterpreter*, std::string* error) {
    *error = "subinterpreters with their own GIL need Python 3.12 or newer";
    return false;
}

void end_subinterpreter(Subinterpreter&) {}

#endif

}  // namespace ep
