// CPU bilinear sampling of whole output rows, for every family that warps: source coordinates (warp's
// flow, eq. 20), samples of every channel, and the backward (coordinate gradient summed over channels,
// and the scatter into the gradient for x).
//
// Per-instruction-set code: compiled once per copy of the kernels (common/cpu_kernels.h), included by
// common/cpu_kernels_isa.h only, inside namespace fastaug::<copy> (so no #pragma once, no includes).
// FASTAUG_ISA_SIMD is 0 for the default copy, whose functions call sampling.h / affine_flow.h per pixel
// (the CUDA kernels' maths), and 1 for the AVX2 / AVX-512 copies, whose float32 overloads below mirror
// those functions lane by lane, operation for operation (no fused multiply-add, the same order of
// additions, the same treatment of far-away and non-finite coordinates), so every copy returns the
// same bits. Invalid corners are never read (masked gathers), so non-finite pixels outside the image
// never leak in, as in grid_sample.
//
// Row buffers (coordinates and gradients) hold a multiple of 16 values, so vector code may read and
// write whole vectors there; tensor rows are read and written with masks past their end.

// Where an item's scatter lands: the image's gradient for x itself when the item is the whole image,
// else the item's band (common/cpu_kernels.h); or, in the SIMD copies, the whole image's pixel slots
// (SlotGrid, below). Corner offsets y * W + x are taken relative to the first row held (shift()):
// base(c) + offset - shift() addresses row y of channel c.
template <typename T>
struct RowScatter {
  T* gx;  // the image's C planes of H * W
  cpu::ScatterBand<T>* band;
  int64_t C, H, W;
  T* slots = nullptr;  // the SIMD copies' pixel slots (SlotGrid) when they scatter there instead
  // The image rows the slots hold, [slot_lo, slot_lo + slot_rows): the whole image, or for an item of a
  // split image (band) its own rows and up to kSlotHalo on either side (a slot band, begin_scatter).
  // Each row of the band's window keeps one home for the whole item: those slots, or the band.
  int64_t slot_lo = 0, slot_rows = 0;
  bool in_slots(int64_t y) const { return y >= slot_lo && y < slot_lo + slot_rows; }
  int64_t lo() const { return band ? band->wlo : 0; }
  int64_t hi() const { return band ? band->whi : H; }
  int64_t shift() const { return lo() * W; }
  T* base(int64_t c) const { return band ? band->window(c, W) : gx + c * H * W; }
  T* row(int64_t c, int64_t y) const { return base(c) + (y - lo()) * W; }  // y in [lo(), hi())
  // Readies the rows touched by pixels whose corner 0 is on rows [y0_min, y0_max] (each with a valid
  // corner, so y0 in [-1, H - 1]); true when they are all held, i.e. base(c) + offset works for them.
  bool prepare(int64_t y0_min, int64_t y0_max) const {
    if (!band) return true;
    band->zero_rows(std::max<int64_t>(y0_min, 0), std::min(y0_max + 1, H - 1), C, W);
    return y0_min >= (lo() == 0 ? -1 : lo()) && y0_max <= (hi() == H ? H - 1 : hi() - 2);
  }
  // Any row of the image (after prepare).
  T* at(int64_t c, int64_t y, int64_t xcol) const {
    if (band && (y < band->wlo || y >= band->whi)) return band->overflow_row(y, c, C, W) + xcol;
    return row(c, y) + xcol;
  }
};

// Pixel slots: where the SIMD copies scatter the gradient of a whole image. The planes take C one-float
// read-add-writes per corner; a slot of 4 floats per pixel holding 4 channels side by side takes one
// 4-float read-add-write for all of them (a third of the memory operations for RGB, a quarter for
// more). An image of more than 4 channels has one grid per group of 4 (channels 4g .. 4g + 3, the last
// group padded), one after the other (NC/4HW4). The grid has a one-pixel border, so the invalid corners
// of a pixel with a valid one land there (never copied out), and two spare rows below it take the
// corners of pixels with none: no corner is tested (one channel gains that alone: its slots are single
// floats). Slots start at 0 like the planes, every element gets the same additions in the same order,
// and the slots are copied to the planes at the item's end: the same bits. Slot of pixel (y, x) in a
// group's grid: (y + 1) * (W + 2) + x + 1, floats(C) floats each.
// An image of kWideSlot channels or more (feature maps) holds its first wide_channels(C) channels in
// wide slots instead, 16 channels a slot, a cache line (the grid is aligned to one): a corner of 16
// channels is one 64-byte read-add-write, where 4-float slots take four. The 4-float slots' additions
// were half the samples of a 64-channel backward; with wide slots (and the output gradient prefetched,
// grad_row_bordered_into) the backward op took 17-23 % fewer samples at 8x64x56², 4x256x28² and
// 32x16x32² (AVX-512; the AVX2 copy, two 32-byte read-add-writes a slot: 5-10 %). The rest of the
// channels follow in 4-float groups. Wide slots are the SIMD copies' (transpose16).
constexpr int kSlot = 4;
// Scratch whose first element must start a cache line (wide slots): allocated kLineSlack elements
// longer, and used from aligned_start(data) on.
template <typename T>
constexpr size_t kLineSlack = 64 / sizeof(T);
template <typename T>
T* aligned_start(T* data) {
  const auto at = reinterpret_cast<uintptr_t>(data);
  return data + (at % 64 ? (64 - at % 64) / sizeof(T) : 0);
}
#if FASTAUG_ISA_SIMD
constexpr int64_t kWideSlot = 16;
#else
constexpr int64_t kWideSlot = int64_t(1) << 40;  // (the default copy has no slots)
#endif
template <typename T>
struct SlotGrid {
  std::vector<T> data;  // a large one the thread's (cpu::ThreadCache): it stays mapped from call to call
  bool cached = false;
  SlotGrid() = default;
  ~SlotGrid() {
    if (cached) cpu::ThreadCache<std::vector<T>>::give(data, data.capacity() * sizeof(T));
  }
  SlotGrid(const SlotGrid&) = delete;
  SlotGrid& operator=(const SlotGrid&) = delete;
  static int64_t width(int64_t W) { return W + 2; }
  static int64_t spare(int64_t H, int64_t W) { return (H + 2) * width(W); }  // a pixel's four corners fit
  static int64_t slots(int64_t H, int64_t W) { return (H + 4) * width(W); }
  static constexpr int64_t floats(int64_t C) { return C == 1 ? 1 : kSlot; }  // per slot of a 4-float group
  static constexpr int64_t wide_channels(int64_t C) { return C / kWideSlot * kWideSlot; }
  // Floats per slot of the group holding channel c.
  static constexpr int64_t group_floats(int64_t C, int64_t c) { return c < wide_channels(C) ? kWideSlot : floats(C); }
  // Floats before the group holding channel c (its first channel: c rounded down to its group's width).
  static int64_t group_offset(int64_t C, int64_t c, int64_t H, int64_t W) {
    const int64_t wide = wide_channels(C);
    if (c < wide) return c / kWideSlot * kWideSlot * slots(H, W);
    return (wide + (c - wide) / kSlot * floats(C)) * slots(H, W);
  }
  // The grids of an image of C channels, zeroed; the first one 64-byte aligned.
  T* reset(int64_t C, int64_t H, int64_t W) {
    const int64_t rest = C - wide_channels(C);
    const size_t size = static_cast<size_t>(group_offset(C, C - 1, H, W) + (rest ? floats(C) : kWideSlot) * slots(H, W));
    if (!cached && size * sizeof(T) >= cpu::ScratchSizes::kCacheFromBytes) {
      cpu::ThreadCache<std::vector<T>>::take(data);
      cached = true;
    }
    data.assign(size + kLineSlack<T>, T(0));  // all-zero bits: +0.0
    return aligned_start(data.data());
  }
};

// Channel c of pixel (y, x) in the slots of an image of C channels (H x W).
template <typename T>
T* slot_of(T* slots, int64_t c, int64_t C, int64_t y, int64_t x, int64_t H, int64_t W) {
  using Grid = SlotGrid<std::remove_const_t<T>>;
  const int64_t K = Grid::group_floats(C, c);
  return slots + Grid::group_offset(C, c, H, W) + ((y + 1) * Grid::width(W) + x + 1) * K + c % K;
}

// A band's slots (RowScatter::slot_lo, slot_rows): its rows past the item's own, up to this many a side.
constexpr int64_t kSlotHalo = 16;

// Channel c of pixel (y, x) of the image in a scatter's slots (y one of the rows they hold).
template <typename T>
T* slot_at(const RowScatter<T>& sc, int64_t c, int64_t y, int64_t x) {
  return slot_of(sc.slots, c, sc.C, y - sc.slot_lo, x, sc.slot_rows, sc.W);
}

// The slots of one group of C channels in slots of K floats, channel c to plane c of gx (C planes of
// H * W). (C and K constants: the compiler turns the strided reads into vector loads and shuffles.)
template <int C, int K, typename T>
void slot_rows_to_planes_c(const T* slots, int64_t y0, int64_t y1, T* d, int64_t channel_stride, int64_t W) {
  for (int64_t y = y0; y < y1; ++y, d += W) {
    const T* s = slots + ((y + 1) * SlotGrid<T>::width(W) + 1) * K;
    for (int64_t x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) d[c * channel_stride + x] = s[x * K + c];
  }
}
// Rows [y0, y1) of the slots (an image of C channels and H rows, row 0 first), channel c to the
// consecutive rows at d + c * channel_stride. (C and K constants inside: the compiler turns the strided
// reads into vector loads and shuffles.)
template <typename T>
void slot_rows_to_planes(const T* slots, int64_t C, int64_t H, int64_t W, int64_t y0, int64_t y1, T* d,
                         int64_t channel_stride) {
  if (y0 >= y1) return;
  if (C == 1) return slot_rows_to_planes_c<1, 1>(slots, y0, y1, d, channel_stride, W);
  const int64_t wide = SlotGrid<T>::wide_channels(C);
#if FASTAUG_ISA_SIMD
  if constexpr (std::is_same<T, float>::value) {
    // Wide groups: 16 pixels' slots at a time, transposed into 16 channel rows.
    const int64_t width = SlotGrid<T>::width(W);
    for (int64_t c0 = 0; c0 < wide; c0 += kWideSlot, slots += kWideSlot * SlotGrid<T>::slots(H, W),
                 d += kWideSlot * channel_stride)
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t x0 = 0; x0 < W; x0 += kWideSlot)
          vec::transpose16(slots + ((y + 1) * width + x0 + 1) * kWideSlot, kWideSlot,
                           static_cast<int>(std::min<int64_t>(kWideSlot, W - x0)), kWideSlot, d + (y - y0) * W + x0,
                           channel_stride);
  }
#endif
  const int64_t group = SlotGrid<T>::slots(H, W) * SlotGrid<T>::floats(C);
  for (int64_t c0 = wide; c0 < C; c0 += kSlot, slots += group, d += kSlot * channel_stride) {
    const int64_t n = std::min<int64_t>(kSlot, C - c0);
    if (n == 1) slot_rows_to_planes_c<1, kSlot>(slots, y0, y1, d, channel_stride, W);
    if (n == 2) slot_rows_to_planes_c<2, kSlot>(slots, y0, y1, d, channel_stride, W);
    if (n == 3) slot_rows_to_planes_c<3, kSlot>(slots, y0, y1, d, channel_stride, W);
    if (n == 4) slot_rows_to_planes_c<4, kSlot>(slots, y0, y1, d, channel_stride, W);
  }
}

// A scatter's slots to where their rows belong: a whole image's to its planes; a band's own rows
// [r0, r1) to the image's planes, the others to the band's window (claimed: ScatterBand::claim).
template <typename T>
void slots_to_planes(const RowScatter<T>& sc, int64_t r0, int64_t r1) {
  const int64_t W = sc.W, lo = sc.slot_lo, hi = sc.slot_lo + sc.slot_rows;
  auto rows = [&](int64_t y0, int64_t y1, T* d, int64_t channel_stride) {
    slot_rows_to_planes(sc.slots, sc.C, sc.slot_rows, W, y0 - lo, y1 - lo, d, channel_stride);
  };
  if (!sc.band) return rows(0, sc.H, sc.gx, sc.H * W);
  sc.band->claim(lo, hi, sc.C, W);
  const int64_t band_stride = (sc.band->whi - sc.band->wlo) * W;
  rows(lo, r0, sc.row(0, lo), band_stride);
  rows(r0, r1, sc.gx + r0 * W, sc.H * W);
  rows(r1, hi, sc.row(0, r1), band_stride);
}

// The gradient for x is a scatter, and floating-point sums depend on their order; every copy adds into
// an element in this one order: output rows in order; each row in blocks of kScatterBlock pixels from
// its start; within a block, for each channel, first the left corners (0, then 2) of every pixel in
// order, then their right corners (1, then 3). Left-then-right keeps the pixels of a smooth flow, which
// share corners with their neighbours, from chaining their additions through memory (pixel-major
// order is up to 4x slower there).
constexpr int kScatterBlock = 16;

// One block's scatter: per pixel l < m, corner q's weight times gout (wg[q][1 + l]; wg[q][0] is padding
// for the SIMD copies' shifted loads), corner 0's offset (relative, see RowScatter), column and row,
// and validity.
template <typename T>
struct ScatterBlock {
  alignas(64) T wg[4][1 + kScatterBlock + 15];
  alignas(64) int32_t off[kScatterBlock], x0[kScatterBlock], y0[kScatterBlock];
  uint32_t valid[4];  // bit l: corner valid at pixel l
  int m;
  bool all_valid;     // every corner of every pixel valid
  bool held;          // every corner on a row RowScatter holds (base(c) + offset works)
};

// Readies the rows the block touches; sets b.held.
template <typename T>
void prepare_block(ScatterBlock<T>& b, const RowScatter<T>& sc) {
  const uint32_t some = b.valid[0] | b.valid[1] | b.valid[2] | b.valid[3];
  b.held = true;
  if (!some || !sc.band) return;
  int64_t y_min = sc.H, y_max = -1;
  for (int l = 0; l < b.m; ++l)
    if ((some >> l) & 1u) {
      y_min = std::min<int64_t>(y_min, b.y0[l]);
      y_max = std::max<int64_t>(y_max, b.y0[l]);
    }
  b.held = sc.prepare(y_min, y_max);
}

// A block's additions where every corner is addressable, in the order above: corner 0 of pixel l at
// g + b.off[l], its right neighbour at + 1, the row below at + down.
template <typename T>
void add_block_corners(const ScatterBlock<T>& b, T* g, int64_t down) {
  const T *w0 = b.wg[0] + 1, *w1 = b.wg[1] + 1, *w2 = b.wg[2] + 1, *w3 = b.wg[3] + 1;
  for (int l = 0; l < b.m; ++l) {
    T* p = g + b.off[l];
    p[0] += w0[l];
    p[down] += w2[l];
  }
  for (int l = 0; l < b.m; ++l) {
    T* p = g + b.off[l];
    p[1] += w1[l];
    p[down + 1] += w3[l];
  }
}

// Plane c's share of a block, in the order above, one addition at a time.
template <typename T>
void scatter_block(const ScatterBlock<T>& b, int64_t c, const RowScatter<T>& sc) {
  const int64_t W = sc.W;
  const T *w0 = b.wg[0] + 1, *w1 = b.wg[1] + 1, *w2 = b.wg[2] + 1, *w3 = b.wg[3] + 1;
  if (!b.held) {  // a flow reaching past the band's window: row by row
    for (int l = 0; l < b.m; ++l) {
      if ((b.valid[0] >> l) & 1u) *sc.at(c, b.y0[l], b.x0[l]) += w0[l];
      if ((b.valid[2] >> l) & 1u) *sc.at(c, b.y0[l] + 1, b.x0[l]) += w2[l];
    }
    for (int l = 0; l < b.m; ++l) {
      if ((b.valid[1] >> l) & 1u) *sc.at(c, b.y0[l], b.x0[l] + 1) += w1[l];
      if ((b.valid[3] >> l) & 1u) *sc.at(c, b.y0[l] + 1, b.x0[l] + 1) += w3[l];
    }
    return;
  }
  T* g = sc.base(c);
  if (b.all_valid) {
    add_block_corners(b, g, W);
    return;
  }
  // Some corners outside the image: theirs go to a scratch slot per pixel instead (no branches to
  // mispredict; the image's elements get exactly the additions above).
  T spare[kScatterBlock];
  auto at = [&](int q, int l, int64_t d) { return ((b.valid[q] >> l) & 1u) ? g + b.off[l] + d : spare + l; };
  for (int l = 0; l < b.m; ++l) {
    *at(0, l, 0) += w0[l];
    *at(2, l, W) += w2[l];
  }
  for (int l = 0; l < b.m; ++l) {
    *at(1, l, 1) += w1[l];
    *at(3, l, W + 1) += w3[l];
  }
}

// Bordered images: corners read without masks (the SIMD copies, float32).
// A copy of an image's C planes inside a border of zeros, kLead rows and columns before the image and
// kTrail after it. simd_taps clamps every coordinate into [-2, size + 1], so corner 0 lies in [-2,
// size + 1] and corner 3 in [-1, size + 2]: every corner of every lane is addressable in the copy,
// and an invalid one (outside the image) reads 0 there, the value the masked reads give it. So
// every vector takes one path (pairs of loads, or plain loads when its corners are consecutive) with
// no validity masks; the results are the same bits. The copy is a sequential pass (the hardware
// prefetches it) and the corner reads then hit cache, where reading the image itself at the flow's
// scattered addresses waits on memory at large sizes. A task keeps one copy, refilled when its items
// move to another image. Callers get it from bordered_image() (warp_rows_cpu.h): null for the default
// copy and float64, which read the planes.
//
// The forwards of images of kQuadsFrom channels or more (and some backwards: backward_quads) hold it
// as pixel slots instead (`quads`): groups of 4 channels side by side, NC/4HW4 as the backward's
// SlotGrid, the last group padded with zeros. A corner is then one 16-byte load for 4 channels, where
// the planes take an 8-byte load per channel for a corner and its right neighbour (pairs_at):
// quad_samples, quad_coordinate_grads. A forward's copy of 16 channels or more holds the first
// multiple of 16 in wide slots (`wide`, 16 channels a cache line, one load a corner: wide_samples).
struct BorderedImage {
  static constexpr int64_t kLead = 2, kTrail = 3, kSlack = 16;  // kSlack: whole-vector loads past the end
  // The copy and the shape whose border it has zeroed (written once a shape and layout); a large one the
  // thread's (cpu::ThreadCache), which stays mapped from call to call (fresh, its pages came faulted in
  // on every call: 12.6 MB at 1x3x1024²). One for both layouts: a large 3-channel image's forward (slots)
  // and backward with a gradient for x (planes) zero it again when the layout changes, which measured
  // faster than two copies kept apart (1x3x600², forward+backward: 1174 against 1614 perf samples, the
  // planes-only build 1164; the second copy's traffic, not the zeroing, is what costs).
  struct Storage {
    std::vector<float> data;
    int64_t C = -1, H = -1, W = -1, wide = 0;
    bool quads = false;
  };
  Storage held;
  bool cached = false;  // held is the thread's (a copy of cpu::ScratchSizes::kCacheFromBytes or more)
  int64_t image = -1;   // which image it holds (consecutive items of one image share the copy)
  bool quads = false;   // pixel slots (4 floats a pixel, one grid per group of 4 channels), not planes
  int64_t width = 0;    // pixels per row, border included
  int64_t plane = 0;    // floats per plane (quads: per group of 4 channels)
  const float* origin = nullptr;  // pixel (0, 0) of plane (group) 0; plane c at origin + c * plane
  // Pixel slots of 16 or more channels: the first `wide` channels (SlotGrid::wide_channels) in wide
  // slots, 16 channels a cache line, group g's pixel (0, 0) at wide_origin + g * wide_plane; the 4-float
  // groups above follow them (channel c >= wide in group (c - wide) / 4).
  int64_t wide = 0, wide_plane = 0;
  const float* wide_origin = nullptr;
  BorderedImage() = default;
  ~BorderedImage() {
    if (cached) cpu::ThreadCache<Storage>::give(held, held.data.capacity() * sizeof(float));
  }
  BorderedImage(const BorderedImage&) = delete;
  BorderedImage& operator=(const BorderedImage&) = delete;
  // Holds image `n` (x: its C planes of H * W), as planes or as pixel slots (as_quads), from 16
  // channels with wide groups first when as_wide.
  void fill(const float* x, int64_t n, int64_t C, int64_t H, int64_t W, bool as_quads = false, bool as_wide = false) {
    const int64_t wide_now = as_quads && as_wide ? SlotGrid<float>::wide_channels(C) : 0;
    if (n == image && as_quads == quads && wide_now == wide) return;
    quads = as_quads;
    wide = wide_now;
    const int64_t floats = quads ? 4 : 1, planes = quads ? (C - wide + 3) / 4 : C;
    width = W + kLead + kTrail;
    plane = (H + kLead + kTrail) * width * floats;
    wide_plane = (H + kLead + kTrail) * width * kWideSlot;
    const int64_t wide_floats = wide / kWideSlot * wide_plane;
    const size_t size = static_cast<size_t>(wide_floats + planes * plane + kSlack) + kLineSlack<float>;
    if (!cached && size * sizeof(float) >= cpu::ScratchSizes::kCacheFromBytes) {
      cpu::ThreadCache<Storage>::take(held);
      cached = true;
    }
    std::vector<float>& data = held.data;
    if (held.C != C || held.H != H || held.W != W || held.quads != quads || held.wide != wide) {  // all-zero bits: +0.0
      data.assign(size, 0.f);
      held.C = C;
      held.H = H;
      held.W = W;
      held.quads = quads;
      held.wide = wide;
    }
    float* start = aligned_start(data.data());  // (a wide slot is one cache line)
    wide_origin = start + (kLead * width + kLead) * kWideSlot;
    origin = start + wide_floats + (kLead * width + kLead) * floats;
    image = n;
    if (quads) return fill_quads(x, C, H, W);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        std::memcpy(const_cast<float*>(origin) + c * plane + y * width, x + (c * H + y) * W, sizeof(float) * W);
  }
  // Whether offsets within a plane fit the taps' 32-bit lanes (pixel slots: sample_quads).
  static constexpr bool fits(int64_t H, int64_t W) { return (H + kLead + kTrail) * (W + kLead + kTrail) < (int64_t(1) << 31); }

 private:
  // Row y of every group: its 4 channels' rows interleaved (interleave4), a vector of pixels at a time.
  // A row's last vector writes whole slots past its end: zeros (the missing lanes load as 0), into the
  // border, or into the next row, written after it (the last row's land in the bottom border: kTrail
  // rows of at least 6 slots, past a vector's 15 spare ones).
  // Wide groups: 16 channels' rows turned into slots (transpose16), 16 pixels at a time (a row's last
  // ones writing zeros past its end, as above).
  void fill_quads(const float* x, int64_t C, int64_t H, int64_t W) {
#if FASTAUG_ISA_SIMD
    for (int64_t c0 = 0; c0 < wide; c0 += kWideSlot)
      for (int64_t y = 0; y < H; ++y) {
        const float* row = x + (c0 * H + y) * W;
        if (y + 2 < H)
          for (int64_t c = 0; c < kWideSlot; ++c)
            for (int64_t j = 0; j < W; j += 16) __builtin_prefetch(row + c * H * W + 2 * W + j);
        float* d = const_cast<float*>(wide_origin) + c0 / kWideSlot * wide_plane + y * width * kWideSlot;
        for (int64_t j = 0; j < W; j += kWideSlot)
          vec::transpose16(row + j, H * W, kWideSlot, static_cast<int>(std::min<int64_t>(kWideSlot, W - j)),
                           d + j * kWideSlot, kWideSlot);
      }
#endif
    float* data = const_cast<float*>(origin);
    for (int64_t c0 = wide; c0 < C; c0 += 4, data += plane)
      for (int64_t y = 0; y < H; ++y) {
        const float* row[4];
        for (int64_t c = 0; c < 4; ++c) row[c] = c0 + c < C ? x + ((c0 + c) * H + y) * W : nullptr;
        float* d = data + y * width * 4;
#if FASTAUG_ISA_SIMD
        // Two rows ahead, prefetched: without, this fill took twice the time of the planes' memcpy at
        // 256x3x32² (x read from the last-level cache, perf samples).
        for (int c = 0; c < 4; ++c)
          if (row[c] && y + 2 < H)
            for (int64_t j = 0; j < W; j += 16) __builtin_prefetch(row[c] + 2 * W + j);
        for (int64_t j = 0; j < W; j += vec::kLanes) {
          const int m = static_cast<int>(std::min<int64_t>(vec::kLanes, W - j));
          vec::Vf v[4];
          for (int c = 0; c < 4; ++c)
            v[c] = !row[c] ? vec::zero() : m == vec::kLanes ? vec::loadu(row[c] + j) : vec::load_n(row[c] + j, m);
          vec::interleave4(v[0], v[1], v[2], v[3], d + 4 * j);
        }
#else
        for (int64_t j = 0; j < W; ++j)
          for (int c = 0; c < 4; ++c) d[4 * j + c] = row[c] ? row[c][j] : 0.f;
#endif
      }
  }
};

// Whether a forward of C channels (H x W) samples a bordered copy held as pixel slots
// (BorderedImage::quads): from kQuadsFrom channels, up to kQuadsMaxPlane pixels a plane. Past that (one
// large image, whose copy is read from memory rather than cache) the planes were as fast or faster:
// 1x4x768² even, 1x4x1024² and 1x3x1024² 6-23 % slower with slots (perf samples of the kernels,
// alternating builds; 1x3x512² 43 % faster, 16x3x224² 16 %, 8x64x56² 38 %).
constexpr int64_t kQuadsFrom = 3, kQuadsMaxPlane = int64_t(1) << 19;
constexpr bool sample_quads(int64_t C, int64_t H, int64_t W) { return C >= kQuadsFrom && H * W <= kQuadsMaxPlane; }

// Whether a backward reads x from a copy held as pixel slots: as the forwards (sample_quads) when it
// scatters no gradient for x, or the gradient of more than a slot's channels (groups of 4); with 3 or 4
// channels, whose gradient goes to one slot grid, its loop read the planes faster (grad_row_bordered_into
// 14 % slower with slots at 32x3x64², border padding; level with zeros padding: perf samples).
constexpr bool backward_quads(int64_t C, int64_t H, int64_t W, bool scatters) {
  return sample_quads(C, H, W) && (!scatters || C > kSlot);
}

// Whether an item of C channels scatters into pixel slots (the SIMD copies, float32; slot numbers in
// 32 bits, as the planes' offsets). Such an item reads x through its bordered copy (grad_row's bordered
// path), whose offsets must fit 32 bits too.
template <typename T>
constexpr bool slot_scatter(int64_t C, int64_t H, int64_t W) {
  return FASTAUG_ISA_SIMD && std::is_same<T, float>::value && C >= 1 &&
         SlotGrid<T>::slots(H, W) < (int64_t(1) << 31) && BorderedImage::fits(H, W);
}

// ---- the default copy: per-pixel maths of sampling.h / affine_flow.h ------------------------------

// Source coordinates (padding applied) of output row i of `warp` and their padding derivatives.
template <typename T>
void warp_coords_row(const T* fx, const T* fy, int64_t i, int64_t H, int64_t W, int64_t padding, bool align,
                     T* ix, T* iy, T* mx, T* my) {
  for (int64_t j = 0; j < W; ++j)
    flow_source(fx[j], fy[j], i, j, H, W, padding, align, &ix[j], &iy[j], &mx[j], &my[j]);
}

// Source coordinates of output row i by eq. 20 from the smoothed maps' rows sm[0..5] (w0..w3, b0, b1);
// ux[j] = normalised_coordinate(j, W) (the SIMD copies read it, this one recomputes it).
template <typename T>
void eq20_coords_row(const T* const* sm, const T* /*ux*/, int64_t i, int64_t H, int64_t W, int64_t padding, T* ix,
                     T* iy, T* mx, T* my) {
  const T uy = normalised_coordinate<T>(i, H);
  for (int64_t j = 0; j < W; ++j)
    eq20_source<T>(sm[0][j], sm[1][j], sm[2][j], sm[3][j], sm[4][j], sm[5][j], uy, i, j, H, W, padding, &ix[j],
                   &iy[j], &mx[j], &my[j]);
}

// out[c * out_stride + j] = bilinear sample of plane c of x (C planes of H * W) at (ix[j], iy[j]). xb: x's
// bordered copy (the SIMD copies read it instead of x when given).
template <typename T>
void sample_row(const T* ix, const T* iy, int64_t n, int64_t H, int64_t W, const T* x, int64_t C, T* out,
                int64_t out_stride, const BorderedImage* /*xb*/) {
  const int64_t plane = H * W;
  for (int64_t j = 0; j < n; ++j) {
    const Corners<T> k = bilinear_corners(ix[j], iy[j], H, W);
    for (int64_t c = 0; c < C; ++c) {
      const T* xc = x + c * plane;
      T acc = T(0);
      for (int q = 0; q < 4; ++q)
        if (k.valid[q]) acc += k.weight[q] * xc[k.offset[q]];
      out[c * out_stride + j] = acc;
    }
  }
}

// gix[j], giy[j] = d(loss)/d(ix[j]), d(loss)/d(iy[j]) summed over the C channels, with gout the
// gradient of the samples (channel stride gout_stride); with a RowScatter, also adds weight * gout into
// the gradient for x at every valid corner (in the order of kScatterBlock). xb: x's bordered copy, which
// the SIMD copies are given whenever the scatter goes to pixel slots (slot_scatter) or there is none.
template <typename T>
void grad_row(const T* ix, const T* iy, int64_t n, int64_t H, int64_t W, const T* x, int64_t C, const T* gout,
              int64_t gout_stride, T* gix, T* giy, const RowScatter<T>* sc, const BorderedImage* /*xb*/) {
  const int64_t plane = H * W;
  ScatterBlock<T> b;
  Corners<T> k[kScatterBlock];
  for (int64_t j0 = 0; j0 < n; j0 += kScatterBlock) {
    b.m = static_cast<int>(std::min<int64_t>(kScatterBlock, n - j0));
    b.all_valid = true;
    for (int q = 0; q < 4; ++q) b.valid[q] = 0;
    for (int l = 0; l < b.m; ++l) {
      k[l] = bilinear_corners(ix[j0 + l], iy[j0 + l], H, W);
      const bool some = k[l].valid[0] || k[l].valid[1] || k[l].valid[2] || k[l].valid[3];
      // Corner 0's pixel (only used at valid corners, which exclude non-finite coordinates).
      b.y0[l] = some ? static_cast<int32_t>(::floor(iy[j0 + l])) : 0;
      b.x0[l] = some ? static_cast<int32_t>(::floor(ix[j0 + l])) : 0;
      b.off[l] = b.y0[l] * static_cast<int32_t>(W) + b.x0[l];
      for (int q = 0; q < 4; ++q) {
        b.valid[q] |= static_cast<uint32_t>(k[l].valid[q]) << l;
        b.all_valid = b.all_valid && k[l].valid[q];
      }
    }
    if (sc) {
      prepare_block(b, *sc);
      for (int l = 0; l < b.m; ++l) b.off[l] -= static_cast<int32_t>(sc->shift());
    }
    T gxa[kScatterBlock] = {}, gya[kScatterBlock] = {};
    for (int64_t c = 0; c < C; ++c) {
      for (int l = 0; l < b.m; ++l) {
        T v[4], d_ix, d_iy;
        corner_values(x + c * plane, k[l], v);
        bilinear_coordinate_grad(k[l], v, &d_ix, &d_iy);
        const T go = gout[c * gout_stride + j0 + l];
        gxa[l] += go * d_ix;
        gya[l] += go * d_iy;
        for (int q = 0; q < 4; ++q) b.wg[q][1 + l] = k[l].weight[q] * go;
      }
      if (sc) scatter_block(b, c, *sc);
    }
    for (int l = 0; l < b.m; ++l) {
      gix[j0 + l] = gxa[l];
      giy[j0 + l] = gya[l];
    }
  }
}

#if FASTAUG_ISA_SIMD
// ---- the SIMD copies (float32): the same maths, kLanes pixels at a time -----------------------------

// The per-vector helpers below must become part of their callers' loops.
#define FASTAUG_SIMD_INLINE __attribute__((always_inline)) inline
// The same for a lambda handed to such a helper (GCC otherwise may keep a large body a call, its
// vector arguments passed through memory: 35 % of a 64x1x28² flow-only backward once pairs_at grew).
#define FASTAUG_SIMD_INLINE_LAMBDA __attribute__((always_inline))

// clip_coordinate (sampling.h) of every lane.
FASTAUG_SIMD_INLINE vec::Vf simd_clip(vec::Vf in, int64_t size, vec::Vf* grad) {
  using namespace vec;
  const Vf hi = set1(static_cast<float>(size - 1));
  const Mask low = le(in, zero()), high = ge(in, hi);
  *grad = select(low | high, zero(), set1(1.f));
  return select(low, zero(), select(high, hi, in));
}

// reflect_coordinate (sampling.h) of every lane. Its remainder is fmod's exact one (the quotient from
// the rounded division, corrected once when it is one too large, then an exact fused remainder); the
// parity of the reflection comes from the rounded quotient, as in the scalar code. False when a lane
// needs the scalar code: non-finite or more than 2^22 spans away.
FASTAUG_SIMD_INLINE bool simd_reflect(vec::Vf in, int64_t twice_low, int64_t twice_high, vec::Vf* out, vec::Vf* grad) {
  using namespace vec;
  if (twice_low == twice_high) {
    *out = *grad = zero();
    return true;
  }
  const float low = static_cast<float>(twice_low) / 2;
  const float span = static_cast<float>(twice_high - twice_low) / 2;
  in = in - set1(low);
  const Mask neg = lt(in, zero());
  const Vf sign = select(neg, set1(-1.f), set1(1.f));
  in = select(neg, -in, in);
  const Vf vspan = set1(span);
  const Vf flips = floor(in / vspan);
  if (!all(lt(flips, set1(4194304.f)))) return false;
  Vf extra = fma(-flips, vspan, in);
  extra = select(lt(extra, zero()), fma(-(flips - set1(1.f)), vspan, in), extra);
  const Mask even = eq(trunc_i(flips) & set1i(1), set1i(0));
  *grad = select(even, sign, -sign);
  *out = select(even, extra + set1(low), (vspan - extra) + set1(low));
  return true;
}

// pad_coordinate (sampling.h) of every lane; false when a lane needs the scalar code.
FASTAUG_SIMD_INLINE bool simd_pad(vec::Vf c, int64_t size, int64_t padding, bool align, vec::Vf* out, vec::Vf* grad) {
  using namespace vec;
  if (padding == kBorder) {
    *out = simd_clip(c, size, grad);
    return true;
  }
  if (padding == kReflection) {
    Vf r, g_reflect, g_clip;
    const bool ok = align ? simd_reflect(c, 0, 2 * (size - 1), &r, &g_reflect)
                          : simd_reflect(c, -1, 2 * size - 1, &r, &g_reflect);
    if (!ok) return false;
    *out = simd_clip(r, size, &g_clip);
    *grad = g_reflect * g_clip;
    return true;
  }
  *out = c;
  *grad = set1(1.f);
  return true;
}

// Lanes [0, m) of a tensor row (m < kLanes: masked, nothing past the row is read).
FASTAUG_SIMD_INLINE vec::Vf simd_load_row(const float* p, int m) { return m == vec::kLanes ? vec::loadu(p) : vec::load_n(p, m); }
FASTAUG_SIMD_INLINE void simd_store_row(float* p, vec::Vf a, int m) {
  if (m == vec::kLanes)
    vec::storeu(p, a);
  else
    vec::store_n(p, a, m);
}
FASTAUG_SIMD_INLINE vec::Vf simd_column(int64_t j) { return vec::to_f(vec::iota_i() + vec::set1i(static_cast<int32_t>(j))); }

inline void warp_coords_row(const float* fx, const float* fy, int64_t i, int64_t H, int64_t W, int64_t padding,
                            bool align, float* ix, float* iy, float* mx, float* my) {
  using namespace vec;
  const Vf row = set1(static_cast<float>(i));
  for (int64_t j = 0; j < W; j += kLanes) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, W - j));
    const Vf cx = simd_column(j) + simd_load_row(fx + j, m), cy = row + simd_load_row(fy + j, m);
    Vf ox, oy, gx, gy;
    if (simd_pad(cx, W, padding, align, &ox, &gx) && simd_pad(cy, H, padding, align, &oy, &gy)) {
      storeu(ix + j, ox);
      storeu(iy + j, oy);
      storeu(mx + j, gx);
      storeu(my + j, gy);
    } else {
      for (int l = 0; l < m; ++l)
        flow_source(fx[j + l], fy[j + l], i, j + l, H, W, padding, align, &ix[j + l], &iy[j + l], &mx[j + l],
                    &my[j + l]);
    }
  }
}

inline void eq20_coords_row(const float* const* sm, const float* ux, int64_t i, int64_t H, int64_t W,
                            int64_t padding, float* ix, float* iy, float* mx, float* my) {
  using namespace vec;
  const float uy_s = normalised_coordinate<float>(i, H);
  const float half_w_s = static_cast<float>(W) / 2, half_h_s = static_cast<float>(H) / 2;
  const Vf uy = set1(uy_s), half_w = set1(half_w_s), half_h = set1(half_h_s), row = set1(static_cast<float>(i));
  for (int64_t j = 0; j < W; j += kLanes) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, W - j));
    const Vf w0 = simd_load_row(sm[0] + j, m), w1 = simd_load_row(sm[1] + j, m);
    const Vf w2 = simd_load_row(sm[2] + j, m), w3 = simd_load_row(sm[3] + j, m);
    const Vf b0 = simd_load_row(sm[4] + j, m), b1 = simd_load_row(sm[5] + j, m);
    const Vf u = loadu(ux + j);
    const Vf dx = w0 * u + w1 * uy + b0, dy = w2 * u + w3 * uy + b1;
    Vf ox, oy, gx, gy;
    if (simd_pad(simd_column(j) + half_w * dx, W, padding, false, &ox, &gx) &&
        simd_pad(row + half_h * dy, H, padding, false, &oy, &gy)) {
      storeu(ix + j, ox);
      storeu(iy + j, oy);
      storeu(mx + j, gx * half_w);
      storeu(my + j, gy * half_h);
    } else {
      for (int l = 0; l < m; ++l)
        eq20_source<float>(sm[0][j + l], sm[1][j + l], sm[2][j + l], sm[3][j + l], sm[4][j + l], sm[5][j + l], uy_s,
                           i, j + l, H, W, padding, &ix[j + l], &iy[j + l], &mx[j + l], &my[j + l]);
    }
  }
}

// The four corners of kLanes sampling points (bilinear_corners of sampling.h, lane by lane). Lanes
// past the row's end (m <= lane) sample pixel (0, 0), are never stored, and have no valid corner.
struct SimdTaps {
  vec::Vi offset, x0, y0;  // offset = y0 * W + x0 of corner 0
  vec::Mask valid[4];
  vec::Vf weight[4];
  vec::Vf tx, ty;
  int32_t base;     // lane 0's offset
  bool interior;    // every corner of every lane inside the image: pair gathers, no masks
  bool contiguous;  // ... and the lanes' corners on one row pair, consecutive columns: plain loads
};

// Corner 0 (x0, y0) and the fractions (tx, ty) of kLanes sampling points. Far away or NaN: clamped
// into [-2, size + 1] first (NaN -> -2), where no corner is valid, so floor -> int is safe; the weights
// of valid corners (coordinates in [-1, size]) are unchanged.
FASTAUG_SIMD_INLINE void simd_corner0(vec::Vf x, vec::Vf y, int64_t H, int64_t W, vec::Vi* x0, vec::Vi* y0,
                                      vec::Vf* tx, vec::Vf* ty) {
  using namespace vec;
  x = select(ge(x, set1(-2.f)), x, set1(-2.f));
  x = select(le(x, set1(static_cast<float>(W + 1))), x, set1(static_cast<float>(W + 1)));
  y = select(ge(y, set1(-2.f)), y, set1(-2.f));
  y = select(le(y, set1(static_cast<float>(H + 1))), y, set1(static_cast<float>(H + 1)));
  const Vf fx = floor(x), fy = floor(y);
  *tx = x - fx;
  *ty = y - fy;
  *x0 = trunc_i(fx);
  *y0 = trunc_i(fy);
}
// The four corners' bilinear weights.
FASTAUG_SIMD_INLINE void simd_weights(vec::Vf tx, vec::Vf ty, vec::Vf w[4]) {
  using namespace vec;
  const Vf ux = set1(1.f) - tx, uy = set1(1.f) - ty;
  w[0] = ux * uy;
  w[1] = tx * uy;
  w[2] = ux * ty;
  w[3] = tx * ty;
}

FASTAUG_SIMD_INLINE SimdTaps simd_taps(vec::Vf x, vec::Vf y, int m, int64_t H, int64_t W) {
  using namespace vec;
  const Mask active = first_n(m);
  SimdTaps t;
  simd_corner0(select(active, x, zero()), select(active, y, zero()), H, W, &t.x0, &t.y0, &t.tx, &t.ty);
  const Vi wi = set1i(static_cast<int32_t>(W)), hi = set1i(static_cast<int32_t>(H));
  const Mask vx0 = gt(t.x0, set1i(-1)) & gt(wi, t.x0), vx1 = gt(t.x0, set1i(-2)) & gt(wi - set1i(1), t.x0);
  const Mask vy0 = gt(t.y0, set1i(-1)) & gt(hi, t.y0), vy1 = gt(t.y0, set1i(-2)) & gt(hi - set1i(1), t.y0);
  t.interior = all(vy0 & vy1 & vx0 & vx1);
  t.valid[0] = vy0 & vx0 & active;
  t.valid[1] = vy0 & vx1 & active;
  t.valid[2] = vy1 & vx0 & active;
  t.valid[3] = vy1 & vx1 & active;
  t.offset = t.y0 * wi + t.x0;
  t.base = first(t.offset);
  t.contiguous = t.interior && all_of(eq(t.offset, broadcast_first(t.offset) + iota_i()) &
                                      eq(t.y0, broadcast_first(t.y0)), active);
  simd_weights(t.tx, t.ty, t.weight);
  return t;
}

// The four corner values of plane xc for the first m lanes, 0 at invalid corners.
FASTAUG_SIMD_INLINE void simd_corner_values(const SimdTaps& t, const float* xc, int64_t W, int m, vec::Vf v[4]) {
  using namespace vec;
  if (t.contiguous) {  // consecutive pixels of two rows: plain (masked) loads
    const float* p = xc + t.base;
    v[0] = simd_load_row(p, m);
    v[1] = simd_load_row(p + 1, m);
    v[2] = simd_load_row(p + W, m);
    v[3] = simd_load_row(p + W + 1, m);
    return;
  }
  const Vi down = set1i(static_cast<int32_t>(W));
  if (t.interior) {
    gather_pairs(xc, t.offset, &v[0], &v[1]);
    gather_pairs(xc, t.offset + down, &v[2], &v[3]);
  } else if (W >= 2) {
    // Each row's two corners still read as one pair, from column xp = clamp(x0, 0, W - 2), and picked
    // out of it: the left corner is the pair's first value when x0 == xp, its second when x0 == W - 1;
    // the right one its second, or its first when x0 == -1. Invalid corners: 0, and rows without a
    // valid corner are not read.
    const Vi xp = min(max(t.x0, set1i(0)), set1i(static_cast<int32_t>(W - 2)));
    const Mask same = eq(t.x0, xp);
    const Vi row0 = t.offset - t.x0 + xp;
    Vf lo, hi;
    gather_pairs(xc, row0, t.valid[0] | t.valid[1], &lo, &hi);
    v[0] = select(t.valid[0], select(same, lo, hi), zero());
    v[1] = select(t.valid[1], select(same, hi, lo), zero());
    gather_pairs(xc, row0 + down, t.valid[2] | t.valid[3], &lo, &hi);
    v[2] = select(t.valid[2], select(same, lo, hi), zero());
    v[3] = select(t.valid[3], select(same, hi, lo), zero());
  } else {  // one-pixel-wide images: no pairs
    const Vi right = set1i(1);
    v[0] = gather(xc, t.offset, t.valid[0]);
    v[1] = gather(xc, t.offset + right, t.valid[1]);
    v[2] = gather(xc, t.offset + down, t.valid[2]);
    v[3] = gather(xc, t.offset + down + right, t.valid[3]);
  }
}

// The bilinear sample from the four corner values (sampling.h's sum: corner by corner from 0, invalid
// corners holding 0), and go times its coordinate gradient (bilinear_coordinate_grad) added to gxa, gya.
FASTAUG_SIMD_INLINE vec::Vf bilinear_sum(const vec::Vf* w, const vec::Vf v[4]) {
  return vec::zero() + w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
}
FASTAUG_SIMD_INLINE void add_coordinate_grad(vec::Vf tx, vec::Vf ty, const vec::Vf v[4], vec::Vf go, vec::Vf* gxa,
                                             vec::Vf* gya) {
  using namespace vec;
  const Vf d_ix = (v[1] - v[0]) * (set1(1.f) - ty) + (v[3] - v[2]) * ty;
  const Vf d_iy = (v[2] - v[0]) * (set1(1.f) - tx) + (v[3] - v[1]) * tx;
  *gxa = *gxa + go * d_ix;
  *gya = *gya + go * d_iy;
}

// The bilinear sample of plane xc (sampling.h's sum: corner by corner from 0, invalid corners adding 0).
FASTAUG_SIMD_INLINE vec::Vf simd_sample(const SimdTaps& t, const float* xc, int64_t W, int m) {
  using namespace vec;
  Vf v[4];
  simd_corner_values(t, xc, W, m, v);
  return bilinear_sum(t.weight, v);
}

// go * d(sample of plane xc)/d(ix) and /d(iy) (sampling.h's bilinear_coordinate_grad) added to gxa, gya.
FASTAUG_SIMD_INLINE void simd_add_coordinate_grad(const SimdTaps& t, const float* xc, int64_t W, int m, vec::Vf go,
                                                  vec::Vf* gxa, vec::Vf* gya) {
  using namespace vec;
  Vf v[4];
  simd_corner_values(t, xc, W, m, v);
  add_coordinate_grad(t.tx, t.ty, v, go, gxa, gya);
}

// The taps of kLanes sampling points in a bordered image: corner 0 at offset (y0 * width + x0), the
// weights and fractions of simd_taps (the same clamp, so the same values), no validity.
struct BorderedTaps {
  vec::Vi offset, x0, y0;
  vec::Vf weight[4];
  vec::Vf tx, ty;
  int32_t base;     // lane 0's offset
  bool contiguous;  // the first m lanes' corners on one row pair at consecutive columns
};

FASTAUG_SIMD_INLINE BorderedTaps bordered_taps(vec::Vf x, vec::Vf y, int m, int64_t H, int64_t W, int64_t width) {
  using namespace vec;
  BorderedTaps t;
  simd_corner0(x, y, H, W, &t.x0, &t.y0, &t.tx, &t.ty);
  t.offset = t.y0 * set1i(static_cast<int32_t>(width)) + t.x0;
  t.base = first(t.offset);
  t.contiguous = all_of(eq(t.offset, broadcast_first(t.offset) + iota_i()) & eq(t.y0, broadcast_first(t.y0)), first_n(m));
  simd_weights(t.tx, t.ty, t.weight);
  return t;
}

// The four corner values of plane xc of a bordered image (row stride `width`); idx: the taps' offsets
// stored once per vector for every channel (read unless contiguous).
FASTAUG_SIMD_INLINE void bordered_corner_values(const BorderedTaps& t, const float* xc, int64_t width,
                                                const int32_t* idx, vec::Vf v[4]) {
  using namespace vec;
  if (t.contiguous) {
    const float* p = xc + t.base;
    v[0] = loadu(p);
    v[1] = loadu(p + 1);
    v[2] = loadu(p + width);
    v[3] = loadu(p + width + 1);
    return;
  }
  pairs_at(xc, idx, &v[0], &v[1]);
  pairs_at(xc + width, idx, &v[2], &v[3]);
}

// The taps' offsets in a bordered image held as pixel slots, in floats (32 bits: sample_quads' plane).
FASTAUG_SIMD_INLINE void slot_offsets(const BorderedTaps& t, int32_t* at) {
  const vec::Vi twice = t.offset + t.offset;
  vec::storeu_i(at, twice + twice);
}

// quad_samples' wide groups (BorderedImage::wide): per pixel, bilinear_sum's sum for 16 channels at once
// (0, then corner by corner, each corner one 64-byte load), then turned into channel rows (transpose16).
FASTAUG_SIMD_INLINE void wide_samples(const BorderedTaps& t, const BorderedImage& xb, float* out, int64_t out_stride,
                                      int m) {
  using namespace vec;
  alignas(64) float w[4][kLanes];
  alignas(64) int32_t off[kLanes];
  alignas(64) float acc[kWideSlot][kWideSlot];  // pixel l's samples of the group's channels
  for (int q = 0; q < 4; ++q) storeu(w[q], t.weight[q]);
  storeu_i(off, t.offset);
  const int64_t down = kWideSlot * xb.width;
  for (int64_t c0 = 0; c0 < xb.wide; c0 += kWideSlot) {
    const float* base = xb.wide_origin + c0 / kWideSlot * xb.wide_plane;
    for (int l = 0; l < m; ++l) {
      const float* p = base + kWideSlot * static_cast<int64_t>(off[l]);
#pragma GCC unroll 2
      for (int h = 0; h < kWideSlot; h += kLanes) {
        Vf a = zero() + set1(w[0][l]) * loadu(p + h);
        a = a + set1(w[1][l]) * loadu(p + kWideSlot + h);
        a = a + set1(w[2][l]) * loadu(p + down + h);
        a = a + set1(w[3][l]) * loadu(p + down + kWideSlot + h);
        storeu(acc[l] + h, a);
      }
    }
    transpose16(acc[0], kWideSlot, m, kWideSlot, out + c0 * out_stride, out_stride);
  }
}

// The samples of every channel at kLanes points (taps t) of a bordered image held as pixel slots
// (BorderedImage::quads), lanes [0, m) stored to out + c * out_stride: bilinear_sum's sum element by
// element (0, then corner by corner), 4 channels a vector of slots, turned into channel vectors
// (transpose4) before they are stored. A corner of 4 channels is one 16-byte load. Wide groups first
// (wide_samples).
FASTAUG_SIMD_INLINE void quad_samples(const BorderedTaps& t, const BorderedImage& xb, int64_t C, float* out,
                                      int64_t out_stride, int m) {
  using namespace vec;
  if (xb.wide) wide_samples(t, xb, out, out_stride, m);
  if (xb.wide == C) return;
  alignas(64) int32_t at[kLanes];
  slot_offsets(t, at);
  Vf w[4][4];  // corner q's weights, spread over the slots of vector j
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) spread4(t.weight[q], w[q]);
  const int64_t down = 4 * xb.width, corner[4] = {0, 4, down, down + 4};
  for (int64_t c0 = xb.wide; c0 < C; c0 += 4) {
    const float* base = xb.origin + (c0 - xb.wide) / 4 * xb.plane;
    Vf v[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      v[j] = zero();
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) v[j] = v[j] + w[q][j] * slots4(base + corner[q], at, j);
    }
    transpose4(v);
    for (int64_t c = 0; c < 4 && c0 + c < C; ++c) simd_store_row(out + (c0 + c) * out_stride, v[c], m);
  }
}

// add_coordinate_grad for every channel (in channel order) at kLanes points of a bordered image held
// as 4-float pixel slots only (no wide groups: a backward's copy, bordered_image), gout the output
// gradient's planes (channel stride gout_stride, lanes [0, m)): each group's output gradient turned into slots (transpose4), the products go * d_ix and go * d_iy formed
// element by element as add_coordinate_grad forms them, then turned back into channel vectors and
// added in channel order.
FASTAUG_SIMD_INLINE void quad_coordinate_grads(const BorderedTaps& t, const BorderedImage& xb, int64_t C,
                                               const float* gout, int64_t gout_stride, int m, vec::Vf* gxa,
                                               vec::Vf* gya) {
  using namespace vec;
  alignas(64) int32_t at[kLanes];
  slot_offsets(t, at);
  const Vf one_tx = set1(1.f) - t.tx, one_ty = set1(1.f) - t.ty;
  Vf ux[4], tx[4], uy[4], ty[4];  // spread over the slots of vector j
  spread4(one_tx, ux);
  spread4(t.tx, tx);
  spread4(one_ty, uy);
  spread4(t.ty, ty);
  const int64_t down = 4 * xb.width;
  for (int64_t c0 = 0; c0 < C; c0 += 4) {
    const int64_t n = std::min<int64_t>(4, C - c0);
    const float* base = xb.origin + c0 / 4 * xb.plane;
    Vf go[4], px[4], py[4];
#pragma GCC unroll 4
    for (int64_t c = 0; c < 4; ++c) go[c] = c < n ? simd_load_row(gout + (c0 + c) * gout_stride, m) : zero();
    transpose4(go);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const Vf v0 = slots4(base, at, j), v1 = slots4(base + 4, at, j);
      const Vf v2 = slots4(base + down, at, j), v3 = slots4(base + down + 4, at, j);
      px[j] = go[j] * ((v1 - v0) * uy[j] + (v3 - v2) * ty[j]);
      py[j] = go[j] * ((v2 - v0) * ux[j] + (v3 - v1) * tx[j]);
    }
    transpose4(px);
    transpose4(py);
    for (int64_t c = 0; c < n; ++c) {
      *gxa = *gxa + px[c];
      *gya = *gya + py[c];
    }
  }
}

inline void sample_row(const float* ix, const float* iy, int64_t n, int64_t H, int64_t W, const float* x, int64_t C,
                       float* out, int64_t out_stride, const BorderedImage* xb) {
  using namespace vec;
  const int64_t plane = H * W;
  if (xb) {
    alignas(64) int32_t idx[kLanes];
    for (int64_t j = 0; j < n; j += kLanes) {
      const int m = static_cast<int>(std::min<int64_t>(kLanes, n - j));
      const BorderedTaps t = bordered_taps(loadu(ix + j), loadu(iy + j), m, H, W, xb->width);
      storeu_i(idx, t.offset);
      if (xb->quads) {
        quad_samples(t, *xb, C, out + j, out_stride, m);
        continue;
      }
      for (int64_t c = 0; c < C; ++c) {
        Vf v[4];
        bordered_corner_values(t, xb->origin + c * xb->plane, xb->width, idx, v);
        simd_store_row(out + c * out_stride + j, bilinear_sum(t.weight, v), m);
      }
    }
    return;
  }
  for (int64_t j = 0; j < n; j += kLanes) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, n - j));
    const SimdTaps t = simd_taps(loadu(ix + j), loadu(iy + j), m, H, W);
    for (int64_t c = 0; c < C; ++c) simd_store_row(out + c * out_stride + j, simd_sample(t, x + c * plane, W, m), m);
  }
}

// scatter_block for a block whose corners lie on one row pair at consecutive columns:
// the same additions, a vector at a time. Column x0 + l gets the left corner of pixel l, then the right
// corner of pixel l - 1 (the vector of right corners loaded one lane back), as in the scalar order.
inline void simd_scatter_contiguous(const ScatterBlock<float>& b, float* g, int64_t W) {
  using namespace vec;
  for (int r = 0; r < 2; ++r) {
    float* p = g + b.off[0] + r * W;
    const float *left = b.wg[2 * r] + 1, *right = b.wg[2 * r + 1] + 1;
    for (int s = 0; s * kLanes < b.m; ++s) {
      const int ms = std::min(kLanes, b.m - s * kLanes);
      const Mask shifted = s == 0 ? andnot(first_n(1), first_n(ms)) : first_n(ms);
      Vf acc = simd_load_row(p + s * kLanes, ms) + loadu(left + s * kLanes);
      acc = select(shifted, acc + loadu(right + s * kLanes - 1), acc);
      simd_store_row(p + s * kLanes, acc, ms);
    }
    p[b.m] += right[b.m - 1];
  }
}

// One slot's read-add-write, p[0..K) += *w * g[0..K): a 4-float slot or a wide one.
template <int64_t K>
FASTAUG_SIMD_INLINE void slot_add_k(float* p, const float* w, const float* g) {
  if constexpr (K == kSlot)
    vec::slot_add(p, w, g);
  else
    vec::wide_add(p, w, g);
}

// scatter_block's additions into pixel slots (SlotGrid) of K floats: b.off holds corner 0's slot. One
// channel: b.wg the weights times go, one float per slot. More: b.wg the bare weights, go the block's
// output gradient as slots (pixel l's at go + K * l, from interleave4 or transpose16), all channels
// of a corner at once.
template <int64_t K = kSlot>
FASTAUG_SIMD_INLINE void scatter_slots(const ScatterBlock<float>& b, const float* go, float* slots, int64_t C,
                                       int64_t W) {
  if (K == kSlot && C == 1) {  // every corner has a place in the grid: the planes' loop for all-valid blocks
    add_block_corners(b, slots, SlotGrid<float>::width(W));
    return;
  }
  const float *w0 = b.wg[0] + 1, *w1 = b.wg[1] + 1, *w2 = b.wg[2] + 1, *w3 = b.wg[3] + 1;
  const int64_t down = SlotGrid<float>::width(W) * K;
  for (int l = 0; l < b.m; ++l) {
    float* p = slots + K * static_cast<int64_t>(b.off[l]);
    slot_add_k<K>(p, w0 + l, go + K * l);
    slot_add_k<K>(p + down, w2 + l, go + K * l);
  }
  for (int l = 0; l < b.m; ++l) {
    float* p = slots + K * static_cast<int64_t>(b.off[l]) + K;
    slot_add_k<K>(p, w1 + l, go + K * l);
    slot_add_k<K>(p + down, w3 + l, go + K * l);
  }
}

// The same additions for a contiguous block (SimdTaps::contiguous: pixel l's corner 0 at slot
// b.off[0] + l): a row of corners at a time, vectors of whole slots. (The grid is wider than the
// block, so its two rows of corners do not overlap.)
FASTAUG_SIMD_INLINE void scatter_slots_contiguous(const ScatterBlock<float>& b, const float* go, float* slots,
                                                  int64_t C, int64_t W) {
  const int64_t width = SlotGrid<float>::width(W);
  if (C == 1) {
    simd_scatter_contiguous(b, slots, width);  // one float per slot: the planes' vector path, rows width apart
    return;
  }
  float* p = slots + kSlot * static_cast<int64_t>(b.off[0]);
  vec::slot_row_add(p, go, b.wg[0] + 1, b.wg[1] + 1, b.m);
  vec::slot_row_add(p + kSlot * width, go, b.wg[2] + 1, b.wg[3] + 1, b.m);
}

// A band's block with a corner on a row its slots do not hold (a flow reaching past kSlotHalo rows):
// group c0's additions one at a time in the block's order, corners outside the image skipped, rows of
// the slots to the slots and the others to the band (RowScatter::at, readied by prepare). b: corner 0
// of each pixel (x0, y0) and the weights, times the output gradient for one channel (b.wg) or bare with
// go the group's output gradient as slots (as scatter_slots, K floats a pixel: the group's width).
__attribute__((noinline)) inline void scatter_slots_unheld(const ScatterBlock<float>& b, const float* go,
                                                          const RowScatter<float>& sc, int64_t c0) {
  const int64_t C = sc.C, K = SlotGrid<float>::group_floats(C, c0), n = C == 1 ? 1 : std::min<int64_t>(K, C - c0);
  auto add = [&](int q, int l) {
    const int64_t x = b.x0[l] + (q & 1), y = b.y0[l] + (q >> 1);
    if (x < 0 || x >= sc.W || y < 0 || y >= sc.H) return;
    const float w = b.wg[q][1 + l];
    for (int64_t k = 0; k < n; ++k) {
      float* p = sc.in_slots(y) ? slot_at(sc, c0 + k, y, x) : sc.at(c0 + k, y, x);
      *p += C == 1 ? w : w * go[K * l + k];
    }
  };
  for (int l = 0; l < b.m; ++l) {
    add(0, l);
    add(2, l);
  }
  for (int l = 0; l < b.m; ++l) {
    add(1, l);
    add(3, l);
  }
}

// Where grad_row_bordered reads a row's source coordinates and writes their gradient: row buffers
// (ix, iy in; gix, giy out), as grad_row has them.
struct BufferedRow {
  const float *ix, *iy;
  float *gix, *giy;
  // Source coordinates of pixels [j, j + kLanes) (lanes past the row's end: junk the taps clamp).
  FASTAUG_SIMD_INLINE void coords(int64_t j, int /*m*/, vec::Vf* x, vec::Vf* y) {
    *x = vec::loadu(ix + j);
    *y = vec::loadu(iy + j);
  }
  // Their coordinate gradient (gxa, gya), pixels [j, j + m).
  FASTAUG_SIMD_INLINE void finish(int64_t j, int /*m*/, vec::Vf gxa, vec::Vf gya) {
    vec::storeu(gix + j, gxa);
    vec::storeu(giy + j, gya);
  }
};

// grad_row reading x's bordered copy, for a scatter into pixel slots or none: the coordinates, and
// where their gradient goes, from `row` (BufferedRow; warp's backward computes them in registers from
// its flow, WarpRow in warp/warp_rows_cpu.h).
// (Band: whether sc scatters into a slot band, a compile-time choice so that whole images run no band
// bookkeeping; grad_row_bordered below picks it.)
template <bool Band, typename Row>
void grad_row_bordered_into(Row& row, int64_t n, int64_t H, int64_t W, const BorderedImage& xb, int64_t C,
                            const float* gout, int64_t gout_stride, const RowScatter<float>* sc) {
  using namespace vec;
  constexpr int S = kScatterBlock / kLanes;  // vectors per scatter block
  const Vi slot_w = set1i(static_cast<int32_t>(SlotGrid<float>::width(W)));
  // Slot rows: image row y at grid row y - slot_lo + 1 (a band's slots start at its row slot_lo).
  const int64_t slot_lo = sc ? sc->slot_lo : 0, slot_rows = sc ? sc->slot_rows : H;
  const Vi spare = set1i(static_cast<int32_t>(SlotGrid<float>::spare(slot_rows, W))), one = set1i(1);
  const Vi row1 = set1i(static_cast<int32_t>(1 - slot_lo));
  const Vi below_x = set1i(-2), past_x = set1i(static_cast<int32_t>(W)), past_y = set1i(static_cast<int32_t>(H));
  // A band's blocks must keep their corners on rows its slots hold, or on the image's border rows
  // -1 and H where the slots reach the image's edge (rows of corner 0, of pixels with a valid corner).
  const int64_t held_lo = slot_lo == 0 ? -1 : slot_lo;
  const int64_t held_hi = slot_lo + slot_rows == H ? H - 1 : slot_lo + slot_rows - 2;
  const Vi big = set1i(1 << 30), small = set1i(-(1 << 30));
  ScatterBlock<float> b;
  alignas(64) float go_slots[kSlot * kScatterBlock];
  alignas(64) int32_t idx[S][kLanes];
  for (int64_t j0 = 0; j0 < n; j0 += kScatterBlock) {
    b.m = static_cast<int>(std::min<int64_t>(kScatterBlock, n - j0));
    // The output gradient two blocks ahead (past the row's end: the next row of its planes), prefetched:
    // the hardware's prefetchers follow a few streams, not one per channel; without, the loads of a
    // 64-channel image's output gradient were a quarter of this loop's samples (8x64x56²).
    if (C > kSlot)
      for (int64_t c = 0; c < C; ++c) __builtin_prefetch(gout + c * gout_stride + j0 + 2 * kScatterBlock);
    // Every vector's taps, those past the row's end too (row buffers hold whole blocks; their lanes are
    // clamped and never used): no zeroing of t (a rep stos per block cost 14 % of a one-channel backward).
    BorderedTaps t[S];
    int ms[S];
    bool contiguous = true;  // the block's corners at consecutive slots of one row pair
    Vi y0_min = big, y0_max = small;  // (a band's: rows of corner 0 of pixels with a valid corner)
    for (int s = 0; s < S; ++s) {
      ms[s] = std::max(0, std::min(kLanes, b.m - s * kLanes));
      Vf x, y;
      row.coords(j0 + s * kLanes, ms[s], &x, &y);
      t[s] = bordered_taps(x, y, ms[s], H, W, xb.width);
      storeu_i(idx[s], t[s].offset);
      if (!ms[s]) continue;
      if (!sc) continue;
      // Some corner valid: x0 in [-1, W - 1] and y0 in [-1, H - 1]. Corner 0's slot, or the spare rows.
      const Mask some = gt(t[s].x0, below_x) & gt(past_x, t[s].x0) & gt(t[s].y0, below_x) & gt(past_y, t[s].y0);
      contiguous = contiguous && t[s].contiguous && all_of(some, first_n(ms[s])) &&
                   (s == 0 || t[s].base == t[0].base + s * kLanes);
      storeu_i(b.off + s * kLanes, select(some, (t[s].y0 + row1) * slot_w + t[s].x0 + one, spare));
      if constexpr (Band) {
        const Mask live = some & first_n(ms[s]);
        y0_min = min(y0_min, select(live, t[s].y0, big));
        y0_max = max(y0_max, select(live, t[s].y0, small));
        storeu_i(b.x0 + s * kLanes, t[s].x0);
        storeu_i(b.y0 + s * kLanes, t[s].y0);
      }
      if (C > 1)
        for (int q = 0; q < 4; ++q) storeu(b.wg[q] + 1 + s * kLanes, t[s].weight[q]);
    }
    // A vector at a time, its channels in order (the coordinate gradient's sums over channels, as the
    // scalar code adds them), the sums kept in registers: with the channels outside, arrays of sums
    // indexed by vector were read and written through the stack once per channel.
    Vf gos[kSlot][S];
    for (int s = 0; s < S; ++s) gos[0][s] = gos[1][s] = gos[2][s] = gos[3][s] = zero();
    for (int s = 0; s < S; ++s) {
      if (!ms[s]) continue;
      Vf gxa = zero(), gya = zero();
      if (xb.quads) {  // (C >= kQuadsFrom > 1)
        quad_coordinate_grads(t[s], xb, C, gout + j0 + s * kLanes, gout_stride, ms[s], &gxa, &gya);
        if (sc && C <= kSlot)
          for (int64_t c = 0; c < C; ++c) gos[c][s] = simd_load_row(gout + c * gout_stride + j0 + s * kLanes, ms[s]);
      }
      for (int64_t c = 0; c < C && !xb.quads; ++c) {
        const Vf go = simd_load_row(gout + c * gout_stride + j0 + s * kLanes, ms[s]);
        Vf v[4];
        bordered_corner_values(t[s], xb.origin + c * xb.plane, xb.width, idx[s], v);
        add_coordinate_grad(t[s].tx, t[s].ty, v, go, &gxa, &gya);
        if (sc && C > 1 && C <= kSlot)
          gos[c][s] = go;
        else if (sc && C == 1)
          for (int q = 0; q < 4; ++q) storeu(b.wg[q] + 1 + s * kLanes, t[s].weight[q] * go);
      }
      row.finish(j0 + s * kLanes, ms[s], gxa, gya);
    }
    if (!sc) continue;
    bool held = true;
    if constexpr (Band) {
      alignas(64) int32_t lo_l[kLanes], hi_l[kLanes];
      storeu_i(lo_l, y0_min);
      storeu_i(hi_l, y0_max);
      const int64_t ylo = *std::min_element(lo_l, lo_l + kLanes), yhi = *std::max_element(hi_l, hi_l + kLanes);
      held = ylo > yhi || (ylo >= held_lo && yhi <= held_hi);
      if (!held) sc->prepare(ylo, yhi);  // the band's rows the block reaches past its slots, zeroed
    }
    const bool by_rows = contiguous && W + 2 > kScatterBlock;
    if (C <= kSlot) {  // one grid, the output gradient kept by the loop above
      if (C > 1)
        for (int s = 0; s < S; ++s)
          interleave4(gos[0][s], gos[1][s], gos[2][s], gos[3][s], go_slots + kSlot * s * kLanes);
      if (Band && !held)
        scatter_slots_unheld(b, go_slots, *sc, 0);
      else if (by_rows)
        scatter_slots_contiguous(b, go_slots, sc->slots, C, W);
      else
        scatter_slots(b, go_slots, sc->slots, C, W);
      continue;
    }
    // Group by group (wide ones, then ones of 4 channels), each group's output gradient read again
    // (from cache: the block's rows were just read), the block's additions into that group's grid.
    static_assert(kScatterBlock == kWideSlot, "a block's output gradient is one 16 x 16 transpose a wide group");
    alignas(64) float go_wide[kWideSlot * kScatterBlock];
    const int64_t wide = SlotGrid<float>::wide_channels(C);
    for (int64_t c0 = 0; c0 < wide; c0 += kWideSlot) {
      transpose16(gout + c0 * gout_stride + j0, gout_stride, kWideSlot, b.m, go_wide, kWideSlot);
      if (Band && !held)
        scatter_slots_unheld(b, go_wide, *sc, c0);
      else
        scatter_slots<kWideSlot>(b, go_wide, sc->slots + SlotGrid<float>::group_offset(C, c0, slot_rows, W), C, W);
    }
    for (int64_t c0 = wide; c0 < C; c0 += kSlot) {
      for (int s = 0; s < S; ++s) {
        for (int k = 0; k < kSlot; ++k)
          gos[k][s] = ms[s] && c0 + k < C ? simd_load_row(gout + (c0 + k) * gout_stride + j0 + s * kLanes, ms[s])
                                          : zero();
        interleave4(gos[0][s], gos[1][s], gos[2][s], gos[3][s], go_slots + kSlot * s * kLanes);
      }
      float* slots = sc->slots + SlotGrid<float>::group_offset(C, c0, slot_rows, W);
      if (Band && !held)
        scatter_slots_unheld(b, go_slots, *sc, c0);
      else if (by_rows)
        scatter_slots_contiguous(b, go_slots, slots, C, W);
      else
        scatter_slots(b, go_slots, slots, C, W);
    }
  }
}

template <typename Row>
void grad_row_bordered(Row& row, int64_t n, int64_t H, int64_t W, const BorderedImage& xb, int64_t C,
                       const float* gout, int64_t gout_stride, const RowScatter<float>* sc) {
  if (sc && sc->band)
    grad_row_bordered_into<true>(row, n, H, W, xb, C, gout, gout_stride, sc);
  else
    grad_row_bordered_into<false>(row, n, H, W, xb, C, gout, gout_stride, sc);
}

inline void grad_row(const float* ix, const float* iy, int64_t n, int64_t H, int64_t W, const float* x, int64_t C,
                     const float* gout, int64_t gout_stride, float* gix, float* giy, const RowScatter<float>* sc,
                     const BorderedImage* xb) {
  using namespace vec;
  if (xb && (!sc || sc->slots)) {
    BufferedRow row{ix, iy, gix, giy};
    grad_row_bordered(row, n, H, W, *xb, C, gout, gout_stride, sc);
    return;
  }
  // The planes: x read at the taps with masks; the scatter into the image's planes or the item's band.
  constexpr int S = kScatterBlock / kLanes;  // vectors per scatter block
  const int64_t plane = H * W;
  ScatterBlock<float> b;
  for (int64_t j0 = 0; j0 < n; j0 += kScatterBlock) {
    b.m = static_cast<int>(std::min<int64_t>(kScatterBlock, n - j0));
    SimdTaps t[S];  // (as in grad_row_bordered)
    int ms[S];
    bool contiguous = true;
    b.all_valid = true;
    for (int q = 0; q < 4; ++q) b.valid[q] = 0;
    for (int s = 0; s < S; ++s) {
      ms[s] = std::max(0, std::min(kLanes, b.m - s * kLanes));
      t[s] = simd_taps(loadu(ix + j0 + s * kLanes), loadu(iy + j0 + s * kLanes), ms[s], H, W);
      if (!ms[s]) continue;
      if (!sc) continue;
      contiguous = contiguous && t[s].contiguous && (s == 0 || t[s].base == t[0].base + s * kLanes);
      for (int q = 0; q < 4; ++q) b.valid[q] |= mask_bits(t[s].valid[q]) << (s * kLanes);
      b.all_valid = b.all_valid && t[s].interior;
      storeu_i(b.x0 + s * kLanes, t[s].x0);
      storeu_i(b.y0 + s * kLanes, t[s].y0);
    }
    if (sc) {
      prepare_block(b, *sc);
      const Vi shift = set1i(static_cast<int32_t>(sc->shift()));
      for (int s = 0; s < S; ++s)
        if (ms[s]) storeu_i(b.off + s * kLanes, t[s].offset - shift);
    }
    // The coordinate gradient first, a vector at a time over its channels (sums in registers, as in
    // grad_row_bordered), then the scatter channel by channel (each channel's output gradient read again:
    // a call between channels would spill the sums).
    for (int s = 0; s < S; ++s) {
      if (!ms[s]) continue;
      Vf gxa = zero(), gya = zero();
      for (int64_t c = 0; c < C; ++c) {
        const Vf go = simd_load_row(gout + c * gout_stride + j0 + s * kLanes, ms[s]);
        simd_add_coordinate_grad(t[s], x + c * plane, W, ms[s], go, &gxa, &gya);
      }
      storeu(gix + j0 + s * kLanes, gxa);
      storeu(giy + j0 + s * kLanes, gya);
    }
    if (!sc) continue;
    for (int64_t c = 0; c < C; ++c) {
      for (int s = 0; s < S; ++s) {
        if (!ms[s]) continue;
        const Vf go = simd_load_row(gout + c * gout_stride + j0 + s * kLanes, ms[s]);
        for (int q = 0; q < 4; ++q) storeu(b.wg[q] + 1 + s * kLanes, t[s].weight[q] * go);
      }
      // (W > block: the block's two rows of corners cannot overlap, so rows may be added one after the other.)
      if (contiguous && b.held && W > kScatterBlock)
        simd_scatter_contiguous(b, sc->base(c), W);
      else
        scatter_block(b, c, *sc);
    }
  }
}
// ---- warp, fused: pixels [f0, f1) of an image as one flat range (no per-row tails), the source
// coordinates computed in registers. Each lane carries its own row and column; per pixel the maths is
// warp_coords_row's and sample_row's / grad_row's exactly.

// The rows and columns of kLanes consecutive pixels, advanced a vector at a time.
struct SimdPixels {
  vec::Vi row, col;
  int64_t W;
  SimdPixels(int64_t f, int64_t W_) : W(W_) {
    using namespace vec;
    row = set1i(static_cast<int32_t>(f / W));
    col = set1i(static_cast<int32_t>(f % W)) + iota_i();
    wrap();
  }
  void next() {
    col = col + vec::set1i(vec::kLanes);
    wrap();
  }
  void wrap() {
    using namespace vec;
    const Vi w = set1i(static_cast<int32_t>(W));
    for (Mask past = gt(col, w - set1i(1)); any(past); past = gt(col, w - set1i(1))) {
      col = select(past, col - w, col);
      row = select(past, row + set1i(1), row);
    }
  }
};

// Source coordinates (and padding derivatives) of kLanes pixels, by the scalar maths lane by lane (for
// a vector simd_pad declines).
__attribute__((noinline)) inline void simd_warp_coords_scalar(const float* fx, const float* fy, int64_t f, int m,
                                                              const SimdPixels& px, int64_t H, int64_t W,
                                                              int64_t padding, bool align, vec::Vf out[4]) {
  using namespace vec;
  alignas(64) int32_t rows[kLanes], cols[kLanes];
  alignas(64) float o[4][kLanes] = {};
  storeu_i(rows, px.row);
  storeu_i(cols, px.col);
  for (int l = 0; l < m; ++l)
    flow_source(fx[f + l], fy[f + l], rows[l], cols[l], H, W, padding, align, &o[0][l], &o[1][l], &o[2][l], &o[3][l]);
  for (int q = 0; q < 4; ++q) out[q] = loadu(o[q]);
}

// Source coordinates (ix, iy) and padding derivatives (mx, my) of kLanes pixels.
FASTAUG_SIMD_INLINE void simd_warp_coords(const float* fx, const float* fy, int64_t f, int m, const SimdPixels& px,
                                          int64_t H, int64_t W, int64_t padding, bool align, vec::Vf out[4]) {
  using namespace vec;
  const Vf cx = to_f(px.col) + simd_load_row(fx + f, m), cy = to_f(px.row) + simd_load_row(fy + f, m);
  if (padding == kZeros) {  // no padding: the coordinates themselves, derivatives 1
    out[0] = cx;
    out[1] = cy;
    out[2] = out[3] = set1(1.f);
    return;
  }
  if (!(simd_pad(cx, W, padding, align, &out[0], &out[2]) && simd_pad(cy, H, padding, align, &out[1], &out[3])))
    simd_warp_coords_scalar(fx, fy, f, m, px, H, W, padding, align, out);
}

// Calls body(f, m, cr, t, idx) for every vector of pixels [f, f + m) of [f0, f1) of one image: cr = ix,
// iy, mx, my (warp's padded source coordinates and their derivatives), t their taps in the bordered
// image xb, idx the taps' offsets in memory (pairs_at).
template <typename Body>
FASTAUG_SIMD_INLINE void for_each_warp_vector(const float* fx, const float* fy, int64_t f0, int64_t f1, int64_t H,
                                              int64_t W, int64_t padding, bool align, const BorderedImage& xb,
                                              Body&& body) {
  using namespace vec;
  SimdPixels px(f0, W);
  alignas(64) int32_t idx[kLanes];
  for (int64_t f = f0; f < f1; f += kLanes, px.next()) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, f1 - f));
    Vf cr[4];
    simd_warp_coords(fx, fy, f, m, px, H, W, padding, align, cr);
    const BorderedTaps t = bordered_taps(cr[0], cr[1], m, H, W, xb.width);
    storeu_i(idx, t.offset);
    body(f, m, static_cast<const Vf*>(cr), t, static_cast<const int32_t*>(idx));
  }
}

// warp's forward over pixels [f0, f1) of one image: flow planes fx, fy, the image bordered (xb, C
// planes), out (C planes).
inline void warp_forward_fused(const float* fx, const float* fy, int64_t f0, int64_t f1, int64_t H, int64_t W,
                               int64_t padding, bool align, const BorderedImage& xb, int64_t C, float* out) {
  const int64_t plane = H * W;
  for_each_warp_vector(fx, fy, f0, f1, H, W, padding, align, xb,
                       [&](int64_t f, int m, const vec::Vf* /*cr*/, const BorderedTaps& t,
                           const int32_t* idx) FASTAUG_SIMD_INLINE_LAMBDA {
                         if (xb.quads) return quad_samples(t, xb, C, out + f, plane, m);
                         for (int64_t c = 0; c < C; ++c) {
                           vec::Vf v[4];
                           bordered_corner_values(t, xb.origin + c * xb.plane, xb.width, idx, v);
                           simd_store_row(out + c * plane + f, bilinear_sum(t.weight, v), m);
                         }
                       });
}

// warp's backward without a gradient for x over pixels [f0, f1) of one image: gflow's planes gfx, gfy.
inline void warp_backward_fused(const float* fx, const float* fy, int64_t f0, int64_t f1, int64_t H, int64_t W,
                                int64_t padding, bool align, const BorderedImage& xb, int64_t C, const float* gout,
                                float* gfx, float* gfy) {
  const int64_t plane = H * W;
  for_each_warp_vector(fx, fy, f0, f1, H, W, padding, align, xb,
                       [&](int64_t f, int m, const vec::Vf* cr, const BorderedTaps& t,
                           const int32_t* idx) FASTAUG_SIMD_INLINE_LAMBDA {
                         vec::Vf gxa = vec::zero(), gya = vec::zero();
                         if (xb.quads) quad_coordinate_grads(t, xb, C, gout + f, plane, m, &gxa, &gya);
                         for (int64_t c = 0; c < C && !xb.quads; ++c) {
                           vec::Vf v[4];
                           bordered_corner_values(t, xb.origin + c * xb.plane, xb.width, idx, v);
                           add_coordinate_grad(t.tx, t.ty, v, simd_load_row(gout + c * plane + f, m), &gxa, &gya);
                         }
                         simd_store_row(gfx + f, gxa * cr[2], m);
                         simd_store_row(gfy + f, gya * cr[3], m);
                       });
}
#endif  // FASTAUG_ISA_SIMD
