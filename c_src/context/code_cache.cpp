#include "context/code_cache.h"

#include "context/source_text.h"

#include <cstring>

namespace ep {

PyObject* CodeCache::get(std::string_view source, int start) {
    LruCache<PyRef>& cache = start == Py_eval_input ? eval_ : exec_;
    if (PyRef* hit = cache.find(source)) return hit->get();
    if (std::memchr(source.data(), '\0', source.size()) != nullptr) {
        PyErr_SetString(PyExc_ValueError, "source code cannot contain null bytes");
        return nullptr;
    }
    std::string text = dedent(source);
    PyRef code = PyRef::steal(Py_CompileString(text.c_str(), "<erlang>", start));
    if (!code) return nullptr;
    if (source.size() > kMaxCachedSource) {
        uncached_ = std::move(code);
        return uncached_.get();
    }
    return cache.insert(std::string(source), std::move(code)).get();
}

void CodeCache::clear() {
    exec_.clear();
    eval_.clear();
    uncached_.reset();
}

}  // namespace ep
