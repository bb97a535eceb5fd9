// The items (blocks of rows, common/cpu_kernels.h) of the flow warp family on CPU: `warp` and
// `affine_flow_warp`, forward and backward.
//
// Per-instruction-set code (see common/bilinear_row_cpu.h). Each output row: its source coordinates
// into a row buffer (warp: from the flow; affine_flow_warp: eq. 20 from the smoothed maps, smoothed
// row by row), then every channel sampled, or in the backward the coordinate gradient (and the
// scatter into the gradient for x) and from it the gradient of the flow / of the smoothed maps, which
// the box filter's adjoint streams into the raw maps' gradient.

// Row buffers of one task: `count` rows of a multiple of 16 values (see bilinear_row_cpu.h).
template <typename T>
struct RowBuffers {
  std::vector<T> data;
  int64_t stride;
  RowBuffers(int count, int64_t W) : data(static_cast<size_t>(count * ((W + 15) / 16 * 16 + 16))),
                                     stride((W + 15) / 16 * 16 + 16) {}
  T* operator[](int r) { return data.data() + r * stride; }
};

// The item's rows [r0, r1) of image n.
struct ItemRows {
  int64_t n, r0, r1;
  template <typename T>
  ItemRows(const cpu::OpArgs<T>& a, int64_t item)
      : n(item / a.blocks), r0((item % a.blocks) * a.rows), r1(std::min(a.H, r0 + a.rows)) {}
};

// The item's scatter target (null without a gradient for x), zeroed: the image's gradient itself
// (whole images) or the item's band, whose window reaches as far again as the item's rows (16 at least).
// In the SIMD copies the item scatters into the task's pixel slots instead (slot_scatter): a whole
// image's, or a band's own rows and kSlotHalo rows a side.
template <typename T>
const RowScatter<T>* begin_scatter(const cpu::OpArgs<T>& a, int64_t item, const ItemRows& it, RowScatter<T>& sc,
                                   SlotGrid<T>& grid) {
  if (!a.gx) return nullptr;
  const int64_t plane = a.H * a.W;
  const bool slots = slot_scatter<T>(a.C, a.H, a.W);
  sc = RowScatter<T>{a.gx + it.n * a.C * plane, a.blocks > 1 ? &a.band[item] : nullptr, a.C, a.H, a.W};
  if (sc.band) {
    sc.band->reset(it.r0, it.r1, std::max<int64_t>(a.rows, 16), a.C, a.H, a.W, /*zero_own=*/!slots);
    sc.slot_lo = std::max(sc.band->wlo, it.r0 - kSlotHalo);
    sc.slot_rows = std::min(sc.band->whi, it.r1 + kSlotHalo) - sc.slot_lo;
  } else {
    sc.slot_rows = a.H;
  }
  if (slots)
    sc.slots = grid.reset(a.C, sc.slot_rows, a.W);
  else if (!sc.band)
    std::memset(sc.gx, 0, sizeof(T) * a.C * plane);  // all-zero bits: +0.0
  return &sc;
}

// After the item: its slots, or its own rows of its band, copied to the gradient (the rest: add_bands).
template <typename T>
void end_scatter(const RowScatter<T>* sc, const ItemRows& it) {
  if (sc && sc->slots) return slots_to_planes(*sc, it.r0, it.r1);
  if (!sc || !sc->band) return;
  for (int64_t c = 0; c < sc->C; ++c)
    std::copy(sc->row(c, it.r0), sc->row(c, it.r1), sc->gx + (c * sc->H + it.r0) * sc->W);
}

// normalised_coordinate(j, W) for every column (the SIMD copies of eq20_coords_row read it).
template <typename T>
void fill_normalised_columns(int64_t W, T* ux) {
  for (int64_t j = 0; j < W; ++j) ux[j] = normalised_coordinate<T>(j, W);
}

// Image n of the call in the task's bordered copy xb (bilinear_row_cpu.h), for the SIMD copies in float32:
// &xb, or null where the planes are read (the default copy, float64, images too large for 32-bit offsets).
// Whenever an item scatters into pixel slots, this gives its bordered copy (slot_scatter).
// A forward's sampling passes as_quads = sample_quads(C, H, W) and as_wide: the copy is then held as
// pixel slots, from 16 channels with wide groups first (quad_samples). A backward passes
// backward_quads (bilinear_row_cpu.h) and no wide groups: its coordinate gradient reads 4-float slots
// (quad_coordinate_grads; with wide slots, whose products take two 16x16 transposes back into
// channels, a 64-channel flow-only backward took 15-48 % more samples).
template <typename T>
const BorderedImage* bordered_image(const cpu::OpArgs<T>& a, int64_t n, BorderedImage& xb, bool as_quads = false,
                                    bool as_wide = false) {
  if constexpr (FASTAUG_ISA_SIMD && std::is_same<T, float>::value) {
    if (!BorderedImage::fits(a.H, a.W)) return nullptr;
    xb.fill(a.x + n * a.C * a.H * a.W, n, a.C, a.H, a.W, as_quads, as_wide);
    return &xb;
  }
  return nullptr;
}

template <typename T>
void warp_forward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, W = a.W, C = a.C, plane = H * W;
  RowBuffers<T> b(4, W);
  BorderedImage bordered;
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows it(a, item);
    const T* fx = a.maps.map(it.n, 0, plane);
    const T* fy = a.maps.map(it.n, 1, plane);
    const BorderedImage* xb = bordered_image(a, it.n, bordered, sample_quads(C, H, W), /*as_wide=*/true);
#if FASTAUG_ISA_SIMD
    if (xb) {
      warp_forward_fused(fx, fy, it.r0 * W, it.r1 * W, H, W, a.padding, a.align_corners, *xb, C,
                         a.out + it.n * C * plane);
      continue;
    }
#endif
    for (int64_t i = it.r0; i < it.r1; ++i) {
      warp_coords_row(fx + i * W, fy + i * W, i, H, W, a.padding, a.align_corners, b[0], b[1], b[2], b[3]);
      sample_row(b[0], b[1], W, H, W, a.x + it.n * C * plane, C, a.out + it.n * C * plane + i * W, plane, xb);
    }
  }
}

#if FASTAUG_ISA_SIMD
// grad_row_bordered's row (BufferedRow's role) in warp's backward with zeros padding: row i's source
// coordinates computed in registers from the flow (column + fx, row + fy: warp_coords_row's values,
// whose padding derivatives are then 1), and their gradient stored into the flow's gradient itself
// (gix * 1: the same bits). No row buffers and no loops over them: they were 15 % of a 16x3x224²
// backward. (The other paddings keep the buffers: simd_warp_coords's scalar fallback, a call inside
// the loop, made the AVX2 copy slower than with them.)
struct WarpRow {
  const float *fx, *fy;  // row i of the image's flow planes
  float *gfx, *gfy;      // row i of their gradient
  int64_t i;
  FASTAUG_SIMD_INLINE void coords(int64_t j, int m, vec::Vf* x, vec::Vf* y) {
    *x = simd_column(j) + simd_load_row(fx + j, m);
    *y = vec::set1(static_cast<float>(i)) + simd_load_row(fy + j, m);
  }
  FASTAUG_SIMD_INLINE void finish(int64_t j, int m, vec::Vf gxa, vec::Vf gya) {
    simd_store_row(gfx + j, gxa, m);
    simd_store_row(gfy + j, gya, m);
  }
};
#endif

template <typename T>
void warp_backward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, W = a.W, C = a.C, plane = H * W;
  RowBuffers<T> b(6, W);
  T *ix = b[0], *iy = b[1], *mx = b[2], *my = b[3], *gix = b[4], *giy = b[5];
  SlotGrid<T> grid;
  BorderedImage bordered;
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows it(a, item);
    RowScatter<T> sc_storage;
    const RowScatter<T>* sc = begin_scatter(a, item, it, sc_storage, grid);
    const T* fx = a.maps.map(it.n, 0, plane);
    const T* fy = a.maps.map(it.n, 1, plane);
    T* gfx = a.gmaps.map(it.n, 0, plane);
    T* gfy = a.gmaps.map(it.n, 1, plane);
    // (A scatter into planes or a band reads x itself: no copy for it.)
    const BorderedImage* xb =
        !sc || sc->slots ? bordered_image(a, it.n, bordered, backward_quads(C, H, W, sc != nullptr)) : nullptr;
#if FASTAUG_ISA_SIMD
    if (!sc && xb) {
      warp_backward_fused(fx, fy, it.r0 * W, it.r1 * W, H, W, a.padding, a.align_corners, *xb, C,
                          a.grad + it.n * C * plane, gfx, gfy);
      continue;
    }
    if (sc && sc->slots && a.padding == kZeros) {  // (slots imply xb: slot_scatter)
      for (int64_t i = it.r0; i < it.r1; ++i) {
        WarpRow row{fx + i * W, fy + i * W, gfx + i * W, gfy + i * W, i};
        grad_row_bordered(row, W, H, W, *xb, C, a.grad + it.n * C * plane + i * W, plane, sc);
      }
      end_scatter(sc, it);
      continue;
    }
#endif
    for (int64_t i = it.r0; i < it.r1; ++i) {
      warp_coords_row(fx + i * W, fy + i * W, i, H, W, a.padding, a.align_corners, ix, iy, mx, my);
      grad_row(ix, iy, W, H, W, a.x + it.n * C * plane, C, a.grad + it.n * C * plane + i * W, plane, gix, giy, sc,
               xb);
      for (int64_t j = 0; j < W; ++j) gfx[i * W + j] = gix[j] * mx[j];
      for (int64_t j = 0; j < W; ++j) gfy[i * W + j] = giy[j] * my[j];
    }
    end_scatter(sc, it);
  }
}

// ---- affine_flow_warp -----------------------------------------------------------------------------

// The P raw maps of image n (affine_flow_warp: w0..w3, b0, b1; appearance: c_w then c_b; transform:
// its parameter map).
template <typename T>
void map_planes(const cpu::OpArgs<T>& a, int64_t n, int P, const T** planes) {
  for (int p = 0; p < P; ++p) planes[p] = a.maps.map(n, p, a.H * a.W);
}

// The items [begin, end) of the backward of a family that smooths its P maps: per item, its scatter
// target (when `scatter`: the gradient for x is a scatter, of samples read through xb, the image's
// bordered copy or null: bordered_image), and the box filter's adjoint streamed over its rows,
// produce(it, i, sm, G, sc, xb) giving row i of the gradients of the smoothed maps (G[p]), sm[p] row i
// of the first Ps smoothed maps. When `scatter`, a whole image may scatter into pixel
// slots (sc->slots): what produce adds into x's gradient itself goes there too (slot_of).
template <typename T, typename Produce>
void smoothed_backward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end, int P, int Ps, bool scatter,
                       Produce&& produce) {
  const int64_t H = a.H, W = a.W, plane = H * W, k = a.smooth;
  std::vector<T> scratch(static_cast<size_t>(smooth_scratch_size(Ps, H, W, k)));
  BoxAdjoint<T> adj(P, H, W, k);
  SlotGrid<T> grid;
  BorderedImage bordered;
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows it(a, item);
    RowScatter<T> sc_storage;
    const RowScatter<T>* sc = scatter ? begin_scatter(a, item, it, sc_storage, grid) : nullptr;
    const BorderedImage* xb = scatter ? bordered_image(a, it.n, bordered, backward_quads(a.C, H, W, sc != nullptr)) : nullptr;
    const T* planes[64];
    T* out[64];
    map_planes(a, it.n, P, planes);
    for (int p = 0; p < P; ++p) out[p] = a.gmaps.map(it.n, p, plane);
    box_adjoint_item(adj, it.r0, it.r1, out, P, planes, Ps, H, W, k, scratch.data(),
                     [&](int64_t i, const T* const* sm, T* const* G) { produce(it, i, sm, G, sc, xb); });
    end_scatter(sc, it);
  }
}

template <typename T>
void affine_forward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, W = a.W, C = a.C, plane = H * W, k = a.smooth;
  RowBuffers<T> b(5, W);  // ix iy mx my ux
  fill_normalised_columns(W, b[4]);
  std::vector<T> scratch(static_cast<size_t>(smooth_scratch_size(kSpatialParams, H, W, k)));
  BorderedImage bordered;
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows it(a, item);
    const T* planes[kSpatialParams];
    map_planes(a, it.n, kSpatialParams, planes);
    const BorderedImage* xb = bordered_image(a, it.n, bordered, sample_quads(C, H, W), /*as_wide=*/true);
    smoothed_rows(planes, kSpatialParams, H, W, k, it.r0, it.r1, scratch.data(), [&](int64_t i, const T* const* sm) {
      eq20_coords_row(sm, b[4], i, H, W, a.padding, b[0], b[1], b[2], b[3]);
      sample_row(b[0], b[1], W, H, W, a.x + it.n * C * plane, C, a.out + it.n * C * plane + i * W, plane, xb);
    });
  }
}

// Row i of d(loss)/d(smoothed map) of the six spatial maps (G[0..5]) from the coordinate gradient
// (gix, giy) and the padding derivatives (mx, my), by the adjoint of eq. 20.
// (Every row its own restrict-qualified argument: with the six outputs behind G's pointers the compiler
// cannot rule out their overlap, and left this loop scalar, 7 % of an affine_flow_warp backward.)
template <typename T>
void eq20_param_grads_span(const T* __restrict gix, const T* __restrict giy, const T* __restrict mx,
                           const T* __restrict my, const T* __restrict ux, T uy, int64_t W, T* __restrict g0,
                           T* __restrict g1, T* __restrict g2, T* __restrict g3, T* __restrict g4,
                           T* __restrict g5) {
  for (int64_t j = 0; j < W; ++j) {
    T g[kSpatialParams];
    eq20_adjoint<T>(gix[j] * mx[j], giy[j] * my[j], ux[j], uy, g);
    g0[j] = g[0];
    g1[j] = g[1];
    g2[j] = g[2];
    g3[j] = g[3];
    g4[j] = g[4];
    g5[j] = g[5];
  }
}

template <typename T>
void eq20_param_grads_row(const T* gix, const T* giy, const T* mx, const T* my, const T* ux, int64_t i, int64_t H,
                          int64_t W, T* const* G) {
  static_assert(kSpatialParams == 6, "one output row per spatial map");
  eq20_param_grads_span(gix, giy, mx, my, ux, normalised_coordinate<T>(i, H), W, G[0], G[1], G[2], G[3], G[4], G[5]);
}

template <typename T>
void affine_backward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, W = a.W, C = a.C, plane = H * W;
  RowBuffers<T> b(7, W);  // ix iy mx my gix giy ux
  T *ix = b[0], *iy = b[1], *mx = b[2], *my = b[3], *gix = b[4], *giy = b[5], *ux = b[6];
  fill_normalised_columns(W, ux);
  smoothed_backward(a, begin, end, kSpatialParams, kSpatialParams, true,
                    [&](const ItemRows& it, int64_t i, const T* const* sm, T* const* G, const RowScatter<T>* sc,
                        const BorderedImage* xb) {
                      eq20_coords_row(sm, ux, i, H, W, a.padding, ix, iy, mx, my);
                      // Rows outside the item (the adjoint's halo) only feed the parameter gradient.
                      grad_row(ix, iy, W, H, W, a.x + it.n * C * plane, C, a.grad + it.n * C * plane + i * W, plane,
                               gix, giy, i >= it.r0 && i < it.r1 ? sc : nullptr, xb);
                      eq20_param_grads_row(gix, giy, mx, my, ux, i, H, W, G);
                    });
}

// dst[j] += src[j] for a row of W.
template <typename T>
void add_row(const T* src, T* dst, int64_t W) {
  for (int64_t j = 0; j < W; ++j) dst[j] += src[j];
}

// Second pass of a split scatter (common/cpu_kernels.h): for every item in [begin, end), what the other
// items' bands hold of its rows, added in item order.
template <typename T>
void add_bands(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t C = a.C, W = a.W, plane = a.H * a.W;
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows own(a, item);
    T* gx = a.gx + own.n * C * plane;
    for (int64_t other = own.n * a.blocks; other < (own.n + 1) * a.blocks; ++other) {
      if (other == item) continue;
      const cpu::ScatterBand<T>& b = a.band[other];
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t y = std::max(b.lo, own.r0); y < std::min(b.hi, own.r1); ++y)
          add_row(b.window(c, W) + (y - b.wlo) * W, gx + c * plane + y * W, W);
        for (int64_t d = 0; d < b.n_above; ++d)
          if (b.wlo - 1 - d >= own.r0 && b.wlo - 1 - d < own.r1)
            add_row(b.above.data() + (d * C + c) * W, gx + c * plane + (b.wlo - 1 - d) * W, W);
        for (int64_t d = 0; d < b.n_below; ++d)
          if (b.whi + d >= own.r0 && b.whi + d < own.r1)
            add_row(b.below.data() + (d * C + c) * W, gx + c * plane + (b.whi + d) * W, W);
      }
    }
  }
}
