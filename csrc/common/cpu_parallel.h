// How the CPU kernels split their work over at::parallel_for: one copy of the grain size and of
// the row-block splits, for every family.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/cpu_kernels.h"

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

namespace cpu {

// The items of the sampling and learned-transformation kernels (common/cpu_kernels.h): a function of
// the shape alone, never of the thread count, because the gradient for x sums in an order it fixes.
// Whole images when the batch gives `items` of them; otherwise blocks of rows, each at least kMinPixels
// (so an item is worth scheduling) and at least `min_rows` rows (a backward that smooths recomputes a
// few rows around each block). 32 items keep up to ~16 threads busy; a backward that scatters into x
// asks for 8, because an image split into blocks scatters through private bands of rows (copied out,
// then added up), which costs time on any number of threads.
constexpr int64_t kItemsForThreads = 32, kItemsWithScatter = 8;
struct ImageSplit {
  int64_t rows, blocks;
};
inline ImageSplit image_split(int64_t N, int64_t H, int64_t W, int64_t min_rows, int64_t items) {
  constexpr int64_t kMinPixels = 4096;
  if (N >= items || H <= 1) return {std::max<int64_t>(H, 1), 1};
  const int64_t want_blocks = (items + N - 1) / N;
  int64_t rows = std::max({(H + want_blocks - 1) / want_blocks, min_rows, (kMinPixels + W - 1) / std::max<int64_t>(W, 1)});
  rows = std::min(rows, H);
  return {rows, (H + rows - 1) / rows};
}

// The argument block of an op on image x (N, C, H, W), split for a window of `smooth` and, when
// `scatter`, for a backward that scatters into the gradient for x.
template <typename T>
OpArgs<T> image_args(const at::Tensor& x, int64_t smooth, bool scatter = false) {
  OpArgs<T> a;
  a.N = x.size(0);
  a.C = x.size(1);
  a.H = x.size(2);
  a.W = x.size(3);
  a.smooth = smooth;
  a.x = x.data_ptr<T>();
  const ImageSplit s = image_split(a.N, a.H, a.W, std::max<int64_t>(8, 8 * (smooth - 1)),
                                   scatter ? kItemsWithScatter : kItemsForThreads);
  a.rows = s.rows;
  a.blocks = s.blocks;
  return a;
}

// Runs `kernel` over every item of the call in parallel (`maps`: parameter maps read per pixel, for the
// grain). With a gradient for x split over several items per image, each item scatters into a band of rows of
// its own, and a second pass adds what the bands hold outside their items' rows, in item order.
template <typename T>
void run_items(OpArgs<T>& a, ItemKernel<T> kernel, int64_t maps, ItemKernel<T> add_bands = nullptr) {
  const int64_t grain = grain_for(a.rows * a.W * (a.C + maps));
  std::vector<ScatterBand<T>> bands;
  if (a.gx && a.blocks > 1 && add_bands) {
    bands.resize(static_cast<size_t>(a.items()));
    a.band = bands.data();
  }
  at::parallel_for(0, a.items(), grain, [&](int64_t begin, int64_t end) { kernel(a, begin, end); });
  if (a.band) at::parallel_for(0, a.items(), grain, [&](int64_t begin, int64_t end) { add_bands(a, begin, end); });
  a.band = nullptr;
}

}  // namespace cpu
}  // namespace fastaug
