// Compiled code objects for source strings seen before (design.md fact 8:
// compiling "1+1" costs 3-5 us, running the cached code object 0.05 us).
#pragma once

#include <Python.h>

#include <string>
#include <string_view>

#include "context/lru_cache.h"
#include "runtime/py_ref.h"

namespace ep {

// One per context thread; used under that context's GIL only.
class CodeCache {
public:
    explicit CodeCache(std::size_t capacity) : exec_(capacity), eval_(capacity) {}

    // Borrowed code object for `source` compiled with `start` (Py_file_input
    // or Py_eval_input); valid until the next call. nullptr with an exception
    // set when it does not compile.
    PyObject* get(std::string_view source, int start);
    void clear();

private:
    static constexpr std::size_t kMaxCachedSource = 64 * 1024;
    LruCache<PyRef> exec_;
    LruCache<PyRef> eval_;
    PyRef uncached_;  // the latest code object too large to cache
};

}  // namespace ep
