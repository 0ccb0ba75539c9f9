// erlang_python_launcher: starts the Python of an isolated context (spec
// §11) as its own child and reports exactly how it ended.
//
//   erlang_python_launcher [--memory-limit BYTES] [--cd DIR] [--env NAME=VALUE]...
//                          -- PYTHON [ARG...]
//
// It runs as an Erlang port ({packet, 4} on fds 0 and 1). The Python child
// inherits both fds and talks to the VM directly; the launcher never reads
// or writes them until the child has gone. Then it writes one last frame,
// {py_worker_exit, Why} in the external term format, where Why is
// {exit_status, N}, {signal, N}, or {exec_failed, Errno} (the child never
// became Python: a bad path, a directory that does not exist), and exits
// with the child's status (128 + N for a signal, as a port reports it).
//
// No orphans: the launcher dies with its parent (the VM's erl_child_setup,
// which dies with the VM) and the child with the launcher (both through
// PR_SET_PDEATHSIG); SIGTERM to the launcher kills the child at once; and
// when the VM closes the port (its context was killed), the child sees
// end-of-file on fd 0 and the launcher, which watches fd 0 for the hang-up
// without reading it, kills the child: a Python stuck in C code holding the
// GIL cannot read that end-of-file.
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t child_pid = 0;

// Returns once the child has exited, or kills it once the VM has closed the
// port (fd 0 hangs up; the launcher never reads it). Without pidfds (Linux
// before 5.3) it returns at once and only the child's end-of-file remains.
void wait_for_exit_or_hangup(pid_t pid) {
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) return;
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {0, 0, 0}};
    for (;;) {
        int n = poll(fds, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || (fds[0].revents & POLLIN)) break;
        if (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            kill(pid, SIGKILL);
            break;
        }
    }
    close(pidfd);
}

void on_term(int) {
    if (child_pid > 0) kill(child_pid, SIGKILL);
}

bool write_all(int fd, const unsigned char* data, std::size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

void put_atom(std::vector<unsigned char>& out, const char* name) {
    std::size_t len = std::strlen(name);
    out.push_back(119);  // SMALL_ATOM_UTF8_EXT
    out.push_back(static_cast<unsigned char>(len));
    out.insert(out.end(), name, name + len);
}

void put_u32(std::vector<unsigned char>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(v >> shift));
}

// {py_worker_exit, {Kind, N}}, length-prefixed for {packet, 4}. A VM that
// has closed the port reads nothing: that is fine.
void report(const char* kind, int n) {
    std::vector<unsigned char> term = {131, 104, 2};  // version, SMALL_TUPLE_EXT arity 2
    put_atom(term, "py_worker_exit");
    term.push_back(104);
    term.push_back(2);
    put_atom(term, kind);
    term.push_back(98);  // INTEGER_EXT
    put_u32(term, static_cast<std::uint32_t>(n));
    std::vector<unsigned char> frame;
    put_u32(frame, static_cast<std::uint32_t>(term.size()));
    frame.insert(frame.end(), term.begin(), term.end());
    write_all(1, frame.data(), frame.size());
}

struct Options {
    long long memory_limit = -1;
    const char* cd = nullptr;
    std::vector<char*> env;
    char** argv = nullptr;  // Python and its arguments, null-terminated
};

bool parse(int argc, char** argv, Options* opts) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--" && i + 1 < argc) {
            opts->argv = argv + i + 1;
            return true;
        }
        if (i + 1 >= argc) return false;
        if (arg == "--memory-limit") {
            char* end = nullptr;
            opts->memory_limit = std::strtoll(argv[++i], &end, 10);
            if (*end != '\0' || opts->memory_limit <= 0) return false;
        } else if (arg == "--cd") {
            opts->cd = argv[++i];
        } else if (arg == "--env") {
            if (std::strchr(argv[i + 1], '=') == nullptr) return false;
            opts->env.push_back(argv[++i]);
        } else {
            return false;
        }
    }
    return false;
}

// In the child: errno goes to the launcher through `err_fd` (closed on a
// successful exec), and the child ends.
[[noreturn]] void fail(int err_fd) {
    int e = errno;
    write_all(err_fd, reinterpret_cast<const unsigned char*>(&e), sizeof e);
    _exit(127);
}

// In the child, before exec.
[[noreturn]] void become_python(const Options& opts, pid_t launcher, int err_fd) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(err_fd);
    if (getppid() != launcher) _exit(127);  // the launcher died before the line above
    std::signal(SIGPIPE, SIG_DFL);
    if (opts.memory_limit > 0) {
        rlimit limit{static_cast<rlim_t>(opts.memory_limit), static_cast<rlim_t>(opts.memory_limit)};
        if (setrlimit(RLIMIT_AS, &limit) != 0) fail(err_fd);
    }
    if (opts.cd != nullptr && chdir(opts.cd) != 0) fail(err_fd);
    for (char* assignment : opts.env)
        if (putenv(assignment) != 0) fail(err_fd);
    execv(opts.argv[0], opts.argv);
    fail(err_fd);
}

}  // namespace

int main(int argc, char** argv) {
    Options opts;
    if (!parse(argc, argv, &opts)) {
        std::fprintf(stderr,
                     "usage: erlang_python_launcher [--memory-limit BYTES] [--cd DIR] [--env NAME=VALUE]... "
                     "-- PYTHON [ARG...]\n");
        report("exec_failed", EINVAL);
        return 2;
    }
    // Dies with whoever started it (erl_child_setup, itself ending with the VM).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::signal(SIGPIPE, SIG_IGN);
    struct sigaction term {};
    term.sa_handler = on_term;
    sigaction(SIGTERM, &term, nullptr);

    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        report("exec_failed", errno);
        return 2;
    }
    // SIGTERM waits until child_pid is set: one arriving right after the
    // fork must still find the child to kill.
    sigset_t term_only, before;
    sigemptyset(&term_only);
    sigaddset(&term_only, SIGTERM);
    sigprocmask(SIG_BLOCK, &term_only, &before);
    pid_t launcher = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        report("exec_failed", errno);
        return 2;
    }
    if (pid == 0) {
        close(err_pipe[0]);
        std::signal(SIGTERM, SIG_DFL);
        sigprocmask(SIG_SETMASK, &before, nullptr);
        become_python(opts, launcher, err_pipe[1]);
    }
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &before, nullptr);
    close(err_pipe[1]);
    int exec_errno = 0;
    ssize_t got;
    do {
        got = read(err_pipe[0], &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    close(err_pipe[0]);

    wait_for_exit_or_hangup(pid);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            report("exec_failed", errno);
            return 2;
        }
    }
    child_pid = 0;
    if (got == static_cast<ssize_t>(sizeof exec_errno)) {
        report("exec_failed", exec_errno);
        return 127;
    }
    if (WIFSIGNALED(status)) {
        report("signal", WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    report("exit_status", WEXITSTATUS(status));
    return WEXITSTATUS(status);
}
