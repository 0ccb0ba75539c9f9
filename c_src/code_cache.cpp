#include "code_cache.h"

#include <cstring>

namespace ep {

std::string dedent(std::string_view source) {
    std::string_view margin;
    bool first = true;
    for (size_t pos = 0; pos < source.size();) {
        size_t end = source.find('\n', pos);
        if (end == std::string_view::npos) end = source.size();
        std::string_view line = source.substr(pos, end - pos);
        size_t indent = line.find_first_not_of(" \t");
        if (indent != std::string_view::npos && line[indent] != '\r') {
            std::string_view lead = line.substr(0, indent);
            if (first) {
                margin = lead;
                first = false;
            } else {
                size_t common = 0;
                while (common < margin.size() && common < lead.size() && margin[common] == lead[common]) ++common;
                margin = margin.substr(0, common);
            }
        }
        pos = end + 1;
    }
    if (margin.empty()) return std::string(source);
    std::string out;
    out.reserve(source.size());
    for (size_t pos = 0; pos < source.size();) {
        size_t end = source.find('\n', pos);
        if (end == std::string_view::npos) end = source.size();
        std::string_view line = source.substr(pos, end - pos);
        // Every non-blank line starts with the margin; blank ones become empty.
        line = line.substr(0, margin.size()) == margin ? line.substr(margin.size()) : std::string_view();
        out.append(line);
        if (end < source.size()) out.push_back('\n');
        pos = end + 1;
    }
    return out;
}

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
