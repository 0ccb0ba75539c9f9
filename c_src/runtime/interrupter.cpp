#include "runtime/interrupter.h"

#include <utility>

namespace ep {

bool Interrupter::start(PyInterpreterState* interp, std::string* error) {
    interp_ = interp;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::exception& e) {
        *error = std::string("could not start the interrupter thread: ") + e.what();
        return false;
    }
    return true;
}

void Interrupter::post(std::function<bool()> job) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
}

void Interrupter::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void Interrupter::run() {
    PyThreadState* tstate = nullptr;
    std::vector<std::function<bool()>> repeats;
    auto next_repeat = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    for (;;) {
        auto ready = [this] { return stopping_ || !jobs_.empty(); };
        if (repeats.empty()) cv_.wait(lock, ready);
        else cv_.wait_until(lock, next_repeat, ready);
        if (stopping_) break;
        std::vector<std::function<bool()>> jobs;
        jobs.swap(jobs_);
        lock.unlock();
        if (std::chrono::steady_clock::now() >= next_repeat) {
            jobs.insert(jobs.end(), repeats.begin(), repeats.end());
            repeats.clear();
        }
        if (!jobs.empty()) {
            if (tstate == nullptr) tstate = PyThreadState_New(interp_);  // bound to this thread
            if (tstate != nullptr) {
                PyEval_RestoreThread(tstate);
                for (auto& job : jobs)
                    if (job()) repeats.push_back(std::move(job));
                PyEval_SaveThread();
            }
            if (!repeats.empty()) next_repeat = std::chrono::steady_clock::now() + kRepeatEvery;
        }
        lock.lock();
    }
    lock.unlock();
    if (tstate != nullptr) {
        PyEval_RestoreThread(tstate);
        PyThreadState_Clear(tstate);
        PyThreadState_DeleteCurrent();
    }
}

}  // namespace ep
