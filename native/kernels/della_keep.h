// DELLA's keep decision for one row (docs/design.md §11, "DELLA without a sort").
//
// MagPrune keeps element i of a row of n with probability p(rank_i), rank_i its
// 0-based position when the row is ordered by (|τ| bits, position), drawn as
// u_i < table[rank_i] (u_i = dare_u24 of the element, table[r] = ceil(p(r)·2^24),
// non-decreasing in r since ε ≥ 0). Only an element whose u_i lies in
// [table[0], table[n−1]) depends on its rank at all (a fraction 2ε of the row),
// and for most of those a coarse rank decides: with keys counted in buckets that
// preserve their order, rank_i lies in [start_b, start_b + count_b), and the
// decision is the same for every rank there unless u_i falls between table[start_b]
// and table[start_b + count_b − 1]. Those few get their exact rank by counting; a
// row with too many of them (keys crowded into a few buckets) is sorted instead
// (a stable radix sort of (key, position)). Every path gives the decision the
// exact rank gives.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dfm {

// The keep thresholds of a row of n by rank: at[r] = ceil(p(r)·2^24), p(r) =
// (d − ε) + 2ε·r/(n − 1) (n = 1: d − ε), so that u < at[r] ⇔ u < p(r)·2^24 for a
// 24-bit integer u.
struct DellaTable {
  std::vector<uint32_t> at;  // n entries
};
DellaTable della_table(size_t n, double density, double epsilon);

// Per-thread scratch reused across rows.
struct DellaRowScratch {
  std::vector<uint32_t> bucket;  // each element's bucket
  std::vector<uint32_t> count;   // elements per bucket (four interleaved histograms)
  std::vector<uint32_t> start;   // per bucket: its first rank (nb + 1 entries)
  std::vector<uint32_t> cand;    // positions whose draw lies between the table's ends
  std::vector<uint32_t> open;    // positions whose exact rank decides
  std::vector<uint64_t> kv, tmp;  // the sort fallback's (key << 32 | position) pairs
  std::vector<uint32_t> order;  // the fallback for rows of more than 2^32 elements
};

// keep[i] = 1 if u[i] < table[rank of i], else 0, for a row of n ≥ 1 elements
// (key: |τ| as f32 bits; u: each element's 24-bit uniform draw).
void della_row_keep(const uint32_t* key, const uint32_t* u, const DellaTable& table, size_t n, uint32_t* keep,
                    DellaRowScratch& s);

}  // namespace dfm
