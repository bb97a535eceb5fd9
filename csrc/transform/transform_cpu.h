// The items (blocks of rows, common/cpu_kernels.h) of the learned transformation family on CPU:
// `appearance` and `transform`, forward and backward.
//
// Per-instruction-set code (see common/bilinear_row_cpu.h). The colour filter runs as row loops over
// the per-pixel maths of transform.h (the code the CUDA kernels run), which the compiler vectorises
// across pixels (`ivdep`: a pixel's output depends on that pixel's inputs only, even when it
// overwrites one of them). Forward: per output row, the row of every parameter map smoothed
// (box_filter_cpu.h), then (transform) the eq. 20 sample of every channel and the colour filter in
// place. Backward: per row, the gradient of every smoothed map (colour: g_c src_q and g_c; spatial: the
// adjoint of eq. 20 applied to the coordinate gradient), streamed through the box filter's adjoint.

// Row pointers of one pixel row: C channels, or C * C colour weights.
template <typename T, int C>
struct ColourRows {
  const T* p[C];
};

// out[c][j] = y[c][j] + c_b[c][j] + sum_q c_w[C c + q][j] src[q][j] (transform.h's colour_filter) for
// W pixels; out may alias y or src.
template <typename T, int C>
void colour_row(const T* const* y_, const T* const* src_, const T* const* cw_, const T* const* cb_, T* const* out_,
                int64_t W) {
  const T *y[C], *src[C], *cb[C], *cw[C * C];
  T* out[C];
  for (int c = 0; c < C; ++c) {
    y[c] = y_[c];
    src[c] = src_[c];
    cb[c] = cb_[c];
    out[c] = out_[c];
  }
  for (int p = 0; p < C * C; ++p) cw[p] = cw_[p];
#pragma GCC ivdep
  for (int64_t j = 0; j < W; ++j) {
    T w[C * C], b[C], s[C], v[C], o[C];
    for (int p = 0; p < C * C; ++p) w[p] = cw[p][j];
    for (int c = 0; c < C; ++c) {
      b[c] = cb[c][j];
      s[c] = src[c][j];
      v[c] = y[c][j];
    }
    colour_filter<T, C>(w, b, s, v, o);
    for (int c = 0; c < C; ++c) out[c][j] = o[c];
  }
}

// G[C c + q][j] = g[c][j] src[q][j]: the gradient of the smoothed colour weights (the gradient of the
// smoothed c_b is g itself).
template <typename T, int C>
void colour_weight_grads_row(const T* const* g_, const T* const* src_, T* const* G_, int64_t W) {
  const T *g[C], *src[C];
  T* G[C * C];
  for (int c = 0; c < C; ++c) {
    g[c] = g_[c];
    src[c] = src_[c];
  }
  for (int p = 0; p < C * C; ++p) G[p] = G_[p];
#pragma GCC ivdep
  for (int64_t j = 0; j < W; ++j) {
    T gg[C], s[C], gw[C * C];
    for (int c = 0; c < C; ++c) {
      gg[c] = g[c][j];
      s[c] = src[c][j];
    }
    colour_filter_weight_grad<T, C>(s, gg, gw);
    for (int p = 0; p < C * C; ++p) G[p][j] = gw[p];
  }
}

// tgt[q][j] = (tgt[q][j] +) sum_c c_w[C c + q][j] g[c][j] (+ g[q][j]): the gradient reaching the
// filter's input (C_w^T g), plus the identity's when `add_identity`, added to tgt when `accumulate`.
// Element j of tgt[q] at tgt[q][j * Step] (Step > 1: pixel slots).
template <typename T, int C, int Step = 1>
void colour_input_grads_row(const T* const* g_, const T* const* cw_, T* const* tgt_, bool add_identity,
                            bool accumulate, int64_t W) {
  const T *g[C], *cw[C * C];
  T* tgt[C];
  for (int c = 0; c < C; ++c) {
    g[c] = g_[c];
    tgt[c] = tgt_[c];
  }
  for (int p = 0; p < C * C; ++p) cw[p] = cw_[p];
  int64_t j0 = 0;
#if FASTAUG_ISA_SIMD
  // Into RGB pixel slots (transform's parallel backward): the strided stores left the loop below scalar
  // (5 % of that backward). A vector of pixels at a time, the same sums (0 + w g0 + w g1 + w g2, no
  // fused multiply-add), interleaved into their slots and added there; each slot's unused fourth float
  // gets + 0.
  if constexpr (std::is_same<T, float>::value && C == 3 && Step == kSlot) {
    if (accumulate && !add_identity) {
      using namespace vec;
      alignas(64) float t4[kSlot * kLanes];
      for (; j0 + kLanes <= W; j0 += kLanes) {
        Vf gg[C], t[C];
        for (int c = 0; c < C; ++c) gg[c] = loadu(g[c] + j0);
        for (int q = 0; q < C; ++q) {
          t[q] = zero();
          for (int c = 0; c < C; ++c) t[q] = t[q] + loadu(cw[C * c + q] + j0) * gg[c];
        }
        interleave4(t[0], t[1], t[2], zero(), t4);
        float* slot = tgt[0] + j0 * Step;  // channel 0 of pixel j0: the slots' first float
        for (int r = 0; r < kSlot; ++r) storeu(slot + r * kLanes, loadu(slot + r * kLanes) + loadu(t4 + r * kLanes));
      }
    }
  }
#endif
#pragma GCC ivdep
  for (int64_t j = j0; j < W; ++j) {
    T gg[C], w[C * C], t[C];
    for (int c = 0; c < C; ++c) gg[c] = g[c][j];
    for (int p = 0; p < C * C; ++p) w[p] = cw[p][j];
    colour_filter_input_grad<T, C>(w, gg, t);
    for (int q = 0; q < C; ++q) {
      const T v = add_identity ? t[q] + gg[q] : t[q];
      tgt[q][j * Step] = accumulate ? tgt[q][j * Step] + v : v;
    }
  }
}

// Rows i of the C planes starting at base (planes of H * W).
template <typename T, int C>
void channel_rows(T* base, int64_t plane, int64_t i, int64_t W, T* rows[C]) {
  for (int c = 0; c < C; ++c) rows[c] = base + c * plane + i * W;
}

// ---- appearance -----------------------------------------------------------------------------------

template <typename T, int C>
void appearance_forward_c(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  constexpr int P = colour_params(C);
  const int64_t H = a.H, W = a.W, plane = H * W, k = a.smooth;
  std::vector<T> scratch(static_cast<size_t>(smooth_scratch_size(P, H, W, k)));
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows it(a, item);
    const T* planes[P];
    map_planes(a, it.n, P, planes);
    smoothed_rows(planes, P, H, W, k, it.r0, it.r1, scratch.data(), [&](int64_t i, const T* const* sm) {
      const T* xr[C];
      T* orow[C];
      channel_rows<const T, C>(a.x + it.n * C * plane, plane, i, W, xr);
      channel_rows<T, C>(a.out + it.n * C * plane, plane, i, W, orow);
      colour_row<T, C>(xr, xr, sm, sm + C * C, orow, W);
    });
  }
}

template <typename T, int C>
void appearance_backward_c(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  constexpr int P = colour_params(C);
  const int64_t W = a.W, plane = a.H * a.W;
  // The smoothed c_w maps are only needed for the gradient of x, which is per pixel (no scatter).
  smoothed_backward(a, begin, end, P, a.gx ? C * C : 0, false,
                    [&](const ItemRows& it, int64_t i, const T* const* sm, T* const* G, const RowScatter<T>*,
                        const BorderedImage*) {
                      const T* gr[C];
                      const T* xr[C];
                      channel_rows<const T, C>(a.grad + it.n * C * plane, plane, i, W, gr);
                      channel_rows<const T, C>(a.x + it.n * C * plane, plane, i, W, xr);
                      colour_weight_grads_row<T, C>(gr, xr, G, W);
                      for (int c = 0; c < C; ++c) std::copy(gr[c], gr[c] + W, G[C * C + c]);
                      if (a.gx && i >= it.r0 && i < it.r1) {  // own rows only
                        T* gxr[C];
                        channel_rows<T, C>(a.gx + it.n * C * plane, plane, i, W, gxr);
                        colour_input_grads_row<T, C>(gr, sm, gxr, /*add_identity=*/true, /*accumulate=*/false, W);
                      }
                    });
}

template <typename T>
void appearance_forward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  a.C == 3 ? appearance_forward_c<T, 3>(a, begin, end) : appearance_forward_c<T, 1>(a, begin, end);
}
template <typename T>
void appearance_backward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  a.C == 3 ? appearance_backward_c<T, 3>(a, begin, end) : appearance_backward_c<T, 1>(a, begin, end);
}

// ---- transform ------------------------------------------------------------------------------------

template <typename T, int C>
void transform_forward_c(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  constexpr int P = transform_params(C);
  const int64_t H = a.H, W = a.W, plane = H * W, k = a.smooth;
  RowBuffers<T> b(5, W);  // ix iy mx my ux
  fill_normalised_columns(W, b[4]);
  std::vector<T> scratch(static_cast<size_t>(smooth_scratch_size(P, H, W, k)));
  BorderedImage bordered;
  for (int64_t item = begin; item < end; ++item) {
    const ItemRows it(a, item);
    const T* planes[P];
    map_planes(a, it.n, P, planes);
    const T* xn = a.x + it.n * C * plane;
    T* on = a.out + it.n * C * plane;
    const BorderedImage* xb = bordered_image(a, it.n, bordered, sample_quads(C, H, W), /*as_wide=*/true);
    smoothed_rows(planes, P, H, W, k, it.r0, it.r1, scratch.data(), [&](int64_t i, const T* const* sm) {
      eq20_coords_row(sm, b[4], i, H, W, a.padding, b[0], b[1], b[2], b[3]);
      // Every channel sampled straight into the output row, then the colour filter in place (serial:
      // on the warped row; parallel: on the unwarped row of x, added to the warped one).
      sample_row(b[0], b[1], W, H, W, xn, C, on + i * W, plane, xb);
      const T* xr[C];
      T* orow[C];
      channel_rows<const T, C>(xn, plane, i, W, xr);
      channel_rows<T, C>(on, plane, i, W, orow);
      const T* const* yr = const_cast<const T* const*>(orow);
      colour_row<T, C>(yr, a.mode == kSerial ? yr : xr, sm + kSpatialParams, sm + kSpatialParams + C * C, orow, W);
    });
  }
}

template <typename T, int C>
void transform_backward_c(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  constexpr int P = transform_params(C);
  constexpr int PG = kSpatialParams + C * C;  // maps whose smoothed values the backward needs
  const int64_t H = a.H, W = a.W, plane = H * W;
  const bool serial = a.mode == kSerial;
  RowBuffers<T> b(7 + 2 * C, W);  // ix iy mx my gix giy ux, C warped rows, C rows of their gradient
  T *ix = b[0], *iy = b[1], *mx = b[2], *my = b[3], *gix = b[4], *giy = b[5], *ux = b[6];
  T *yrow[C], *gyrow[C];
  for (int c = 0; c < C; ++c) {
    yrow[c] = b[7 + c];
    gyrow[c] = b[7 + C + c];
  }
  fill_normalised_columns(W, ux);
  smoothed_backward(a, begin, end, P, PG, true,
                    [&](const ItemRows& it, int64_t i, const T* const* sm, T* const* G, const RowScatter<T>* sc,
                        const BorderedImage* xb) {
    const bool own = i >= it.r0 && i < it.r1;  // rows outside the item only feed the map gradients
    const T* xn = a.x + it.n * C * plane;
    eq20_coords_row(sm, ux, i, H, W, a.padding, ix, iy, mx, my);
    const T* gr[C];
    const T* xr[C];
    channel_rows<const T, C>(a.grad + it.n * C * plane, plane, i, W, gr);
    channel_rows<const T, C>(xn, plane, i, W, xr);
    // d(loss)/d(warped image) of this row (channel stride gy_stride).
    const T* gy;
    int64_t gy_stride;
    if (serial) {
      // out = y + C_w y + c_b with y the warped row (recomputed): d/dy = g + C_w^T g.
      sample_row(ix, iy, W, H, W, xn, C, yrow[0], b.stride, xb);
      colour_weight_grads_row<T, C>(gr, const_cast<const T* const*>(yrow), G + kSpatialParams, W);
      colour_input_grads_row<T, C>(gr, sm + kSpatialParams, gyrow, /*add_identity=*/true, /*accumulate=*/false, W);
      gy = gyrow[0];
      gy_stride = b.stride;
    } else {
      // out = y + C_w x + c_b: the colour term's gradient lands on x at this very pixel.
      colour_weight_grads_row<T, C>(gr, xr, G + kSpatialParams, W);
      if (sc && own) {
        T* gxr[C];
        for (int c = 0; c < C; ++c) gxr[c] = sc->slots ? slot_at(*sc, c, i, 0) : sc->row(c, i);
        if (sc->slots && C > 1)
          colour_input_grads_row<T, C, kSlot>(gr, sm + kSpatialParams, gxr, /*add_identity=*/false,
                                              /*accumulate=*/true, W);
        else
          colour_input_grads_row<T, C>(gr, sm + kSpatialParams, gxr, /*add_identity=*/false, /*accumulate=*/true, W);
      }
      gy = gr[0];
      gy_stride = plane;
    }
    grad_row(ix, iy, W, H, W, xn, C, gy, gy_stride, gix, giy, own ? sc : nullptr, xb);
    eq20_param_grads_row(gix, giy, mx, my, ux, i, H, W, G);
    for (int c = 0; c < C; ++c) std::copy(gr[c], gr[c] + W, G[PG + c]);  // d/d(smoothed c_b) = g
  });
}

template <typename T>
void transform_forward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  a.C == 3 ? transform_forward_c<T, 3>(a, begin, end) : transform_forward_c<T, 1>(a, begin, end);
}
template <typename T>
void transform_backward(const cpu::OpArgs<T>& a, int64_t begin, int64_t end) {
  a.C == 3 ? transform_backward_c<T, 3>(a, begin, end) : transform_backward_c<T, 1>(a, begin, end);
}
