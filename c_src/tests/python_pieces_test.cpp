// The parts that need CPython but not the Erlang VM, against a real
// embedded interpreter.
#include <Python.h>
#include <gtest/gtest.h>

#include <thread>

#include "context/code_cache.h"
#include "runtime/embedded_source.h"
#include "runtime/gil_check.h"
#include "runtime/py_ref.h"

namespace {

class PythonEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        PyConfig config;
        PyConfig_InitIsolatedConfig(&config);
        PyConfig_SetBytesString(&config, &config.home, EP_PYTHON_HOME);
        PyStatus status = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        ASSERT_FALSE(PyStatus_Exception(status)) << (status.err_msg ? status.err_msg : "");
    }
};

const auto* const python_env = ::testing::AddGlobalTestEnvironment(new PythonEnvironment);

}  // namespace

TEST(PyRef, StealAndBorrowCountReferences) {
    PyObject* raw = PyList_New(0);
    Py_ssize_t base = Py_REFCNT(raw);
    {
        ep::PyRef owner = ep::PyRef::steal(raw);
        ep::PyRef extra = ep::PyRef::borrow(raw);
        EXPECT_EQ(Py_REFCNT(raw), base + 1);
        ep::PyRef moved = std::move(extra);
        EXPECT_FALSE(extra);
        EXPECT_EQ(Py_REFCNT(raw), base + 1);
        Py_INCREF(raw);  // keep it alive past the scope to look at it
    }
    EXPECT_EQ(Py_REFCNT(raw), base);
    Py_DECREF(raw);
}

TEST(PyRef, ReleaseHandsTheReferenceOver) {
    ep::PyRef ref = ep::PyRef::steal(PyLong_FromLong(123456));
    PyObject* raw = ref.release();
    EXPECT_FALSE(ref);
    Py_DECREF(raw);
}

TEST(GilCheck, DroppingWithoutTheGilLeaksAndCounts) {
    PyObject* raw = PyList_New(0);
    Py_INCREF(raw);
    Py_ssize_t before = Py_REFCNT(raw);
    std::uint64_t violations = ep::gil_violations();
    std::thread([raw] {
        EXPECT_FALSE(ep::holds_gil());
        ep::PyRef orphan = ep::PyRef::steal(raw);  // dropped here, on a thread without the GIL
    }).join();
    EXPECT_TRUE(ep::holds_gil());
    EXPECT_EQ(ep::gil_violations(), violations + 1);
    EXPECT_EQ(Py_REFCNT(raw), before);  // leaked, not decremented
    Py_DECREF(raw);
    Py_DECREF(raw);
}

TEST(CodeCache, ReturnsTheSameCodeObjectForTheSameSource) {
    ep::CodeCache cache(8);
    PyObject* a = cache.get("1 + 1", Py_eval_input);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(cache.get("1 + 1", Py_eval_input), a);
    EXPECT_NE(cache.get("1 + 1", Py_file_input), a);  // exec and eval are cached apart
}

TEST(CodeCache, EvictsLeastRecentlyUsed) {
    ep::CodeCache cache(2);
    PyObject* a = cache.get("a = 1", Py_file_input);
    ep::PyRef keep = ep::PyRef::borrow(a);
    cache.get("b = 1", Py_file_input);
    cache.get("c = 1", Py_file_input);
    EXPECT_NE(cache.get("a = 1", Py_file_input), a);  // recompiled
}

TEST(CodeCache, CompileErrorsSetAPythonException) {
    ep::CodeCache cache(2);
    EXPECT_EQ(cache.get("def (:", Py_file_input), nullptr);
    EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_SyntaxError));
    PyErr_Clear();
    EXPECT_EQ(cache.get(std::string_view("a\0b", 3), Py_file_input), nullptr);
    EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_ValueError));
    PyErr_Clear();
}

TEST(CodeCache, DedentsIndentedSource) {
    ep::CodeCache cache(2);
    PyObject* code = cache.get("\n    x = 1\n    y = x + 1\n", Py_file_input);
    ASSERT_NE(code, nullptr);
    ep::PyRef globals = ep::PyRef::steal(PyDict_New());
    PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
    ep::PyRef result = ep::PyRef::steal(PyEval_EvalCode(code, globals.get(), globals.get()));
    ASSERT_TRUE(result);
    EXPECT_EQ(PyLong_AsLong(PyDict_GetItemString(globals.get(), "y")), 2);
}

TEST(CodeCache, LargeSourceIsCompiledButNotCached) {
    ep::CodeCache cache(4);
    std::string big = "x = 0\n";
    while (big.size() < 70 * 1024) big += "x += 1\n";
    PyObject* first = cache.get(big, Py_file_input);
    ASSERT_NE(first, nullptr);
    ep::PyRef keep = ep::PyRef::borrow(first);
    EXPECT_NE(cache.get(big, Py_file_input), first);
}

TEST(EmbeddedSource, ReturnsTheNamespaceItRanIn) {
    ep::PyRef ns = ep::run_embedded_source("def double(x):\n    return 2 * x\nvalue = len('abc')\n");
    ASSERT_TRUE(ns);
    PyObject* value = PyDict_GetItemString(ns.get(), "value");  // builtins were visible
    ASSERT_NE(value, nullptr);
    EXPECT_EQ(PyLong_AsLong(value), 3);
    EXPECT_NE(PyDict_GetItemString(ns.get(), "double"), nullptr);
}

TEST(EmbeddedSource, FailureLeavesTheExceptionSet) {
    ep::PyRef ns = ep::run_embedded_source("raise ValueError('no')\n");
    EXPECT_FALSE(ns);
    ASSERT_TRUE(PyErr_ExceptionMatches(PyExc_ValueError));
    PyErr_Clear();
    EXPECT_FALSE(ep::run_embedded_source("def (:\n"));
    EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_SyntaxError));
    PyErr_Clear();
}
