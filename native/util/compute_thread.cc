#include "util/compute_thread.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace dfm {

namespace {

struct Job {
  const std::function<void()>* fn;
  std::exception_ptr error;
  bool done = false;
};

// Never destroyed: the thread may still wait on the queue while the process
// exits, after static destructors would have run.
struct ComputeThread {
  std::mutex m;
  std::condition_variable wake;  // the thread: a job was queued
  std::condition_variable done;  // the callers: a job ended
  std::deque<Job*> queue;
  std::thread::id id;

  ComputeThread() {
    std::thread t([this] { loop(); });
    id = t.get_id();
    t.detach();
  }

  void loop() {
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(m);
        wake.wait(lock, [this] { return !queue.empty(); });
        job = queue.front();
        queue.pop_front();
      }
      try {
        (*job->fn)();
      } catch (...) {
        job->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(m);
        job->done = true;
      }
      done.notify_all();
    }
  }
};

ComputeThread& compute_thread() {
  static ComputeThread* t = new ComputeThread();
  return *t;
}

}  // namespace

void run_on_compute_thread(const std::function<void()>& fn) {
  ComputeThread& t = compute_thread();
  if (std::this_thread::get_id() == t.id) {
    fn();
    return;
  }
  Job job{&fn, nullptr, false};
  {
    std::lock_guard<std::mutex> lock(t.m);
    t.queue.push_back(&job);
  }
  t.wake.notify_one();
  {
    std::unique_lock<std::mutex> lock(t.m);
    t.done.wait(lock, [&job] { return job.done; });
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace dfm
