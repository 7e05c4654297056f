// One long-lived thread that runs every native job using an OpenMP team.
//
// libgomp keeps a team of threads per thread that opens a parallel region. The
// jobs of the addon's async workers used to open their regions on whichever
// libuv pool thread ran them (four by default), so a merge of 66 tensors went
// through up to four teams: each job woke a team that had gone to sleep, while
// the threads of the team before still spun for the next region on the same
// two cores. Every job now runs on this one thread (the pool thread waits for
// it), so one team serves them all and finds its threads still spinning
// between jobs (docs/design.md §11: warm task arithmetic and the copy probe
// about 10% faster, as with UV_THREADPOOL_SIZE=1).
// Jobs run one at a time, in the order they were submitted; each would use
// every core anyway.
#pragma once
#include <functional>

namespace dfm {

// Runs `job` on the compute thread and waits for it; an exception it throws is
// rethrown here. Called from the compute thread itself, runs `job` in place.
void run_on_compute_thread(const std::function<void()>& job);

}  // namespace dfm
