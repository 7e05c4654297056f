// Merge kernels (docs/design.md §1, unified view): every method of mergekit that
// dfmerge offers, plus DF-Merge's accumulate and combine steps.
//
// Two layers:
//  * tile kernels (merge_tiles.h): one formula each over one small tile of a
//    tensor (cache resident), vectorisable, reading f32 spans or BF16/F32 storage;
//  * the chunked driver merge_tensor_cpu(): streams a whole tensor through those
//    kernels in chunks, OpenMP-parallel (each thread a contiguous share of a chunk,
//    in tiles), reading all-BF16 or all-F32 inputs in place and converting any
//    other mix tile by tile into thread-local f32 scratch, writing the output (F32/F16/BF16,
//    round to nearest even) into memory or pwrite()-ing it into a file slot;
//    inputs inside a live MappedFile are pread() chunk by chunk into reused
//    buffers (merge_staging.h, docs/design.md §11), so resident memory stays at a
//    few chunks whatever the tensor size.
// merge.cu holds the CUDA twins of the tile kernels and the same driver for a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <functional>
#include <string>
#include <vector>

#include "kernels/convert.h"
#include "kernels/merge_methods.h"

namespace dfm {

// ---------------------------------------------------------------------------
// Whole-tensor jobs.

#define DFM_METHOD_ENUM(E, name, base, kind) E,
enum class MergeMethod { DFM_MERGE_METHODS(DFM_METHOD_ENUM) };
#undef DFM_METHOD_ENUM

// Parses a kernel name of DFM_MERGE_METHODS (merge_methods.h); throws
// DfError("UnknownMethod") otherwise.
MergeMethod parse_merge_method(const std::string& name);
const char* merge_method_name(MergeMethod m);

// One input tensor: n elements of `dtype` at `data` (no alignment needed).
struct TensorIn {
  const uint8_t* data = nullptr;
  Dtype dtype = Dtype::F32;
};

struct MergeJob {
  MergeMethod method = MergeMethod::Linear;
  size_t n = 0;                  // elements of every input and of the output
  std::string tensor;            // name, for error messages
  TensorIn base;                 // every method but linear and fisher
  std::vector<TensorIn> models;  // k models; for DfCombine: {W, S}
  std::vector<TensorIn> fishers; // Fisher: one per model
  std::vector<float> weights;    // w_k / λ_k (not used by DfCombine)
  bool normalize = false;
  double density = 1.0;          // ties: fraction of |τ| kept; dare: keep probability 1 − p
  uint64_t seed = 0;             // dare
  uint64_t tensor_id = 0;        // dare: FNV-1a 64 of the tensor name
  std::vector<float> fisher_scale;  // fisher: c_k (empty: all 1)
  float fisher_floor = -std::numeric_limits<float>::infinity();
  float df_scale = 1.0f;         // dfmerge: M
  // lincomb: out = [b +] Σ_k coef[seg][k] (x_k [− b]); coef is segments × k
  std::vector<float> coef;
  bool use_base = false;
  Segments segments = Segments::Whole;
  uint64_t seg_len = 1;
  // nearswap
  float nearswap_t = 0.0f;
  // gta (see gta_elem): sparsification, consensus, rescale (0 none, 1 L1 norm per tensor), λ
  Sparsify sparsify = Sparsify::Band;
  bool consensus = false;
  int rescale = 0;
  float lambda = 1.0f;
  std::vector<uint64_t> keep_count;  // Band: entries kept below the dropped top (empty: all)
  std::vector<uint64_t> drop_count;  // Band: largest entries dropped (breadcrumbs' γ; empty: none)
  std::vector<double> densities;     // Random / Mask: keep probability per model
  std::vector<double> epsilons;      // Mask (DELLA): probability spread ε per model
  uint64_t row_len = 0;              // Mask (DELLA): elements per row (0: the whole tensor is one row)
  // Mask (DELLA): bytes of drop mask held at once (k bits per element). A tensor
  // needing more is merged in blocks of rows, each with its own mask (and, for
  // the L1 rescale, one extra ranking pass over the whole tensor first).
  size_t mask_budget = size_t(128) << 20;
  uint64_t first_element = 0;        // index of element 0 in the whole tensor (DELLA's hash; set for blocks)
  // sce
  double select_topk = 1.0;
  // Output: memory (out != nullptr) or a file slot (fd >= 0, at fd_offset).
  Dtype out_dtype = Dtype::F32;
  uint8_t* out = nullptr;
  int fd = -1;
  uint64_t fd_offset = 0;
  // Execution.
  size_t chunk = size_t(1) << 20;  // elements per chunk
  int threads = 1;
  bool release_inputs = true;      // madvise(DONTNEED) finished pages of file-mapped inputs
};

// Releases, as a stream over n elements advances, the whole pages of each input
// before element `pos` (only inputs inside a live MappedFile: see release_if_mapped).
// (MADV_WILLNEED read-ahead of the next chunks was tried and made warm-cache
// merges 8x slower; the kernel's own fault-around read-ahead is used instead.)
class PageReleaser {
 public:
  PageReleaser(bool enabled, std::vector<TensorIn> inputs);
  void upto(size_t pos);
  // Maps the pages of elements [b, e) of every input in one call per input
  // (MADV_POPULATE_READ), instead of one page fault per 64 KiB while reading.
  void populate(size_t b, size_t e) const;

 private:
  bool enabled_;
  std::vector<TensorIn> inputs_;
  std::vector<uintptr_t> from_;
};

// Checks a job's shape and parameters; throws DfError("InvalidArgument", ...).
void validate_merge_job(const MergeJob& job);

// Runs a job on the CPU (validates it first).
void merge_tensor_cpu(const MergeJob& job);

// The per-tensor constants of a job, derived once (shared by the CPU and CUDA drivers).
struct MergeConstants {
  int k = 0;
  float scale = 1.0f;         // linear / task arithmetic / dare_linear: 1/Σw when normalising, else 1
  float inv_lam_sum = 1.0f;   // fisher: 1/Σλ (the 0/0 fallback)
  std::vector<float> c;       // fisher: c_k
  std::vector<uint64_t> keys; // dare: per-model keys
  uint32_t keep_thr = 0;      // dare: ceil(p · 2^24)
  float keep_prob = 1.0f;     // dare: 1 − p
};
MergeConstants merge_constants(const MergeJob& job);
bool merge_uses_base(const MergeJob& job);
bool is_element_method(MergeMethod m);

// The element methods' parameters with their per-tensor statistics (selection
// thresholds, L1 rescale factors, DELLA's drop mask, SCE's weights), computed on
// the CPU over the whole tensor before the merge pass; shared by both drivers.
struct ElemPrepared {
  ElemParams p;
  std::vector<uint8_t> mask;  // p.mask points here (CPU)
};
ElemPrepared prepare_element_method(MergeJob& job);  // re-points job's inputs while it reads (restored)

// DELLA whose drop mask (k bits per element) exceeds mask_budget is merged in
// blocks of rows (a multiple of 8 rows, so each block's mask starts on a byte),
// each block ranked, masked and merged as a job of its own (its hash index
// first_element + e, so the bytes equal the whole-tensor path's). The L1 rescale
// factors need the whole tensor: they come from one ranking pass before (sums
// only, no mask) and reach merge_block as rs (null without the L1 rescale); the
// block job's own rescale is then off and its factors are to be replaced by rs.
// Both drivers use it.
bool della_in_blocks(const MergeJob& j);
void for_della_blocks(MergeJob& j, const std::function<void(MergeJob& block, const std::vector<float>* rs)>& merge_block);

// For each group g, the bit pattern of the kk[g]-th largest of the non-negative
// f32 keys of stream src[g] over n elements (exact); kk = 0 gives 0xffffffff,
// kk ≥ n gives 0. keys(s, first, m, out, scratch) writes stream s's keys of
// elements [first, first + m) (scratch: kSelectScratch floats); groups sharing a
// stream compute it once per tile. A key must depend on its element's values
// alone, not on its index: the sample reads its blocks packed side by side. One pass in the usual case: a stratified
// sample brackets each group's answer, the pass counts the keys above the bracket
// and collects those inside, and the answer is selected among those; a group
// whose answer falls outside its bracket (or whose bracket holds too many keys)
// is finished by a two-pass radix selection (16 high bits, then 16 low bits).
constexpr size_t kSelectScratch = 4096;
using KeyFn = std::function<void(size_t, size_t, size_t, uint32_t*, float*)>;
// `inputs` are the live fields keys() reads (staged: merge_staging.h).
std::vector<uint32_t> kth_largest_keys(size_t n, const std::vector<uint64_t>& kk, const std::vector<size_t>& src,
                                       const KeyFn& keys, const std::vector<TensorIn*>& inputs,
                                       const std::string& tensor, size_t chunk, int threads, bool release_inputs);
// One stream, with kk = floor(nnz · frac) where nnz is the number of its non-zero
// keys (SCE: count_nonzero of the variances), counted in the same pass.
uint32_t kth_largest_of_nonzero(size_t n, double frac, const KeyFn& keys, const std::vector<TensorIn*>& inputs,
                                const std::string& tensor, size_t chunk, int threads, bool release_inputs);
// The same with src[g] = g.
std::vector<uint32_t> kth_largest_keys(size_t n, const std::vector<uint64_t>& kk, const KeyFn& keys,
                                       const std::vector<TensorIn*>& inputs, const std::string& tensor, size_t chunk,
                                       int threads, bool release_inputs);

// Gram matrices of the k vectors v_q = x_q − b (base.data set) or x_q, per
// segment (Segments): G[s][q][r] = Σ_{i ∈ s} v_q[i] v_r[i] in f64 (products of
// the f32 values, summed in an order fixed by the tensor alone). Returns
// segments × k × k values.
struct GramJob {
  size_t n = 0;
  std::string tensor;
  TensorIn base;
  std::vector<TensorIn> models;
  Segments segments = Segments::Whole;
  uint64_t seg_len = 1;
  int threads = 1;
  bool release_inputs = true;
};
std::vector<double> tensor_gram_cpu(const GramJob& job);

// TIES: per model, the f32 bit pattern of the kk-th largest |x_k − b| over the
// whole tensor, kk = round(density · n), by kth_largest_keys (exact). Entries
// with bits(|τ|) ≥ threshold are kept; kk = 0 gives 0xffffffff (keeps nothing).
std::vector<uint32_t> ties_thresholds(MergeJob& job);

// Picks the threshold from the two histograms (shared with the CUDA driver).
uint32_t ties_select_high(const uint64_t* hist_hi, uint64_t kk, uint64_t* remaining);
uint32_t ties_select_low(const uint64_t* hist_lo, uint64_t remaining);

// DF-Merge accumulate over a whole tensor: S += F; W += F ⊙ λ (x − base), or
// W += F ⊙ λ x when base.data is null (x already a task vector).
struct AccumulateJob {
  size_t n = 0;
  TensorIn fisher, model, base;
  float lambda = 1.0f;
  float* s = nullptr;
  float* w = nullptr;
  size_t chunk = size_t(1) << 20;
  int threads = 1;
  bool release_inputs = true;
};
void df_accumulate_cpu(const AccumulateJob& job);

// Σ x² of a tensor (f32 per tile, f64 across tiles).
double sum_of_squares_cpu(TensorIn x, size_t n, int threads, bool release_inputs);

// Bandwidth probe: copies n bytes with the merge driver's threading (each thread
// a contiguous share, in tiles), for the benchmark's baseline.
void stream_copy(const uint8_t* src, uint8_t* dst, size_t n, int threads);

// Bandwidth probe for file-to-file merges (the benchmark's baseline): n elements
// of every input read the way a merge reads them (pread into staging buffers for
// mapped inputs) and input 0 written to fd at byte off the way a merge writes its
// output, with the same chunks and threads, and no arithmetic.
void stream_file_copy(const std::vector<TensorIn>& inputs, size_t n, int fd, uint64_t off, int threads);

}  // namespace dfm
