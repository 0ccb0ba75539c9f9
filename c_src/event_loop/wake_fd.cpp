#include "event_loop/wake_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace ep {

WakeFd::~WakeFd() {
    if (fd_ >= 0) ::close(fd_);
}

bool WakeFd::open(std::string* error) {
    fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd_ < 0) {
        *error = std::string("eventfd: ") + std::strerror(errno);
        return false;
    }
    return true;
}

bool WakeFd::signal() {
    // Coalesced: a burst of submissions costs one write and one wake-up.
    if (pending_.exchange(true, std::memory_order_seq_cst)) return false;
    std::uint64_t one = 1;
    // Only EAGAIN (counter full) can fail here, and then the fd is readable anyway.
    while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    return true;
}

void WakeFd::consume() {
    // Drained first, then cleared: a signal that raced with the read saw
    // `pending_` still set and did not write, and its work is queued before
    // our caller looks; any signal after the clear writes again. (Cleared
    // first, a racing write could be drained with `pending_` left set, and
    // every later signal would skip its write: a lost wake-up.)
    std::uint64_t count;
    while (::read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
    pending_.store(false, std::memory_order_seq_cst);
}

}  // namespace ep
