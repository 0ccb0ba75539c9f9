#include "runtime/gil_check.h"

#include <atomic>
#include <cstdio>

namespace ep {
namespace {
std::atomic<std::uint64_t> violations{0};
}

void note_gil_violation(const char* where) {
    if (violations.fetch_add(1, std::memory_order_relaxed) < 10)
        std::fprintf(stderr, "erlang_python: Python reference dropped without the GIL in %s (leaked)\n", where);
}

std::uint64_t gil_violations() { return violations.load(std::memory_order_relaxed); }

}  // namespace ep
