// Everything the per-row kernel headers (included by common/cpu_kernels_isa.h) use, included before any
// target region so that none of it is compiled for a newer CPU than the baseline.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "common/affine_flow.h"
#include "common/box_filter.h"
#include "common/cpu_kernels.h"
#include "common/sampling.h"
#include "common/simd_cpu.h"
#include "transform/colour_filter.h"
