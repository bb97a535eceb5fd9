// How the CPU kernels split their work over at::parallel_for: one copy of the grain size and of
// the row-block split, for every family.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace fastaug {

// Minimum work items per task so that tiny inputs run inline: waking a thread pool costs more than
// processing a few ten thousand elements.
inline int64_t grain_for(int64_t elements_per_item) {
  constexpr int64_t kMinElementsPerTask = 1 << 15;
  return std::max<int64_t>(1, kMinElementsPerTask / std::max<int64_t>(1, elements_per_item));
}

// Rows per parallel work item for kernels that split images into blocks of rows: whole images
// when the batch alone gives every thread four items, otherwise blocks of at least 8 rows.
inline int64_t rows_per_item(int64_t N, int64_t H) {
  const int64_t want_items = 4 * at::get_num_threads();
  if (N >= want_items) return H;
  const int64_t splits = (want_items + N - 1) / N;
  return std::max<int64_t>(8, (H + splits - 1) / splits);
}

// The split itself: items of `rows` rows of one image (`blocks` per image), or whole images.
struct RowBlocks {
  int64_t rows, blocks;
  RowBlocks(int64_t N, int64_t H, bool whole_images)
      : rows(whole_images ? H : rows_per_item(N, H)), blocks((H + rows - 1) / std::max<int64_t>(rows, 1)) {}
};

}  // namespace fastaug
