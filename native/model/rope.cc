// Rotary position embeddings, HF Llama convention (rotate_half over the two
// halves of each head, not interleaved pairs), with every rope scaling
// transformers implements for Llama-family models. The frequencies follow
// transformers' modeling_rope_utils.py, in f32 where it computes in f32:
//   default:  inv_freq[i] = 1 / theta^(2i/HD)
//   linear:   inv_freq / factor                              (position interpolation)
//   dynamic:  theta' = theta · (factor·n/N − (factor − 1))^(HD/(HD−2)), n = max(T, N),
//             N = max_position_embeddings                    (dynamic NTK; depends on T)
//   yarn:     inv_freq = interp·(1 − e) + extrap·e, interp = extrap/factor, e = 1 − ramp(i)
//             with ramp linear from the correction dims of beta_fast / beta_slow rotations
//             over original_max; attention scaling 0.1·ln(factor)+1 (or mscale/mscale_all_dim)
//             (YaRN, Peng et al. 2023, eqs. 17-23)
//   longrope: inv_freq = 1 / (ext_i · theta^(2i/HD)), ext = long_factor when T > original_max
//             else short_factor; attention scaling sqrt(1 + ln(factor)/ln(original_max))
//   llama3:   wavelengths 2π/inv_freq above original_max/low_freq_factor divided by factor,
//             below original_max/high_freq_factor kept, smoothly interpolated between
// The tables are cos/sin(t · inv_freq) · attention_scaling (cos/sin in double, rounded).
#include <algorithm>
#include <cmath>

#include "model/layers.h"

namespace dfm {

namespace {
constexpr double kPi = 3.14159265358979323846;

// theta^(2i/HD) with the exponent rounded to f32 as torch.arange(0, dim, 2).float() / dim.
float pos_freq(double theta, int i, int HD) {
  const float e = (float)(2 * i) / (float)HD;
  return (float)std::pow((double)(float)theta, (double)e);
}

// YaRN's inverse dimension formula: the dimension whose wavelength makes
// num_rotations turns over max_positions.
double correction_dim(double num_rotations, int dim, double base, int max_positions) {
  return (dim * std::log(max_positions / (num_rotations * 2 * kPi))) / (2 * std::log(base));
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }
}  // namespace

int64_t rope_length_key(const RopeScaling& s, int T) {
  if (s.type == RopeType::Dynamic) return std::max(T, s.original_max);
  if (s.type == RopeType::Longrope) return T > s.original_max ? 1 : 0;
  return 0;
}

void rope_frequencies(float* inv_freq, float* attention_scaling, const RopeScaling& s, double theta, int HD, int T) {
  const int H = HD / 2;
  const float factor = (float)s.factor;
  float scaling = 1.0f;
  switch (s.type) {
    case RopeType::Default:
      for (int i = 0; i < H; ++i) inv_freq[i] = 1.0f / pos_freq(theta, i, HD);
      break;
    case RopeType::Linear:
      for (int i = 0; i < H; ++i) inv_freq[i] = (1.0f / pos_freq(theta, i, HD)) / factor;
      break;
    case RopeType::Dynamic: {
      const double n = (double)std::max(T, s.original_max);
      const double base = theta * std::pow(s.factor * n / s.original_max - (s.factor - 1), (double)HD / (HD - 2));
      for (int i = 0; i < H; ++i) inv_freq[i] = 1.0f / pos_freq(base, i, HD);
      break;
    }
    case RopeType::Yarn: {
      scaling = (float)(s.attention_factor > 0 ? s.attention_factor
                        : (s.mscale != 0 && s.mscale_all_dim != 0)
                            ? yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim)
                            : yarn_mscale(s.factor, 1.0));
      double low = correction_dim(s.beta_fast, HD, theta, s.original_max);
      double high = correction_dim(s.beta_slow, HD, theta, s.original_max);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, (double)(HD - 1));
      if (low == high) high += 0.001;  // as transformers: no zero-width ramp
      for (int i = 0; i < H; ++i) {
        const float pf = pos_freq(theta, i, HD);
        const float extrap = 1.0f / pf, interp = 1.0f / (factor * pf);
        const float ramp = std::min(1.0f, std::max(0.0f, ((float)i - (float)low) / (float)(high - low)));
        const float e = 1.0f - ramp;  // extrapolation weight
        inv_freq[i] = interp * (1.0f - e) + extrap * e;
      }
      break;
    }
    case RopeType::Longrope: {
      scaling = (float)(s.attention_factor > 0 ? s.attention_factor
                        : s.factor <= 1 ? 1.0
                                        : std::sqrt(1 + std::log(s.factor) / std::log((double)s.original_max)));
      const std::vector<float>& ext = T > s.original_max ? s.long_factor : s.short_factor;
      for (int i = 0; i < H; ++i) inv_freq[i] = 1.0f / (ext[i] * pos_freq(theta, i, HD));
      break;
    }
    case RopeType::Llama3: {
      const float low_wl = (float)(s.original_max / s.low_freq_factor);
      const float high_wl = (float)(s.original_max / s.high_freq_factor);
      for (int i = 0; i < H; ++i) {
        const float f = 1.0f / pos_freq(theta, i, HD);
        const float wl = (float)(2 * kPi) / f;
        float g = wl > low_wl ? f / factor : f;
        if (!(wl < high_wl) && !(wl > low_wl)) {
          const float smooth = ((float)s.original_max / wl - (float)s.low_freq_factor) /
                               (float)(s.high_freq_factor - s.low_freq_factor);
          g = (1.0f - smooth) * g / factor + smooth * g;
        }
        inv_freq[i] = g;
      }
      break;
    }
  }
  *attention_scaling = scaling;
}

void rope_tables(float* cos_t, float* sin_t, int T, int HD, const float* inv_freq, float attention_scaling) {
  const int H = HD / 2;
  for (int i = 0; i < H; ++i) {
    for (int t = 0; t < T; ++t) {
      const float a = (float)t * inv_freq[i];
      cos_t[(size_t)t * H + i] = (float)std::cos((double)a) * attention_scaling;
      sin_t[(size_t)t * H + i] = (float)std::sin((double)a) * attention_scaling;
    }
  }
}

void rope_forward(float* out, const float* inp, const float* cos_t, const float* sin_t, int T, int NH, int HD) {
  const int H = HD / 2;
  for (int t = 0; t < T; ++t) {
    const float* c = cos_t + (size_t)t * H;
    const float* s = sin_t + (size_t)t * H;
    for (int h = 0; h < NH; ++h) {
      const float* x = inp + ((size_t)t * NH + h) * HD;
      float* o = out + ((size_t)t * NH + h) * HD;
      for (int i = 0; i < H; ++i) {
        const float x1 = x[i], x2 = x[i + H];
        o[i] = x1 * c[i] - x2 * s[i];
        o[i + H] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

// The rotation's transpose: dx1 = d1·cos + d2·sin, dx2 = d2·cos − d1·sin. Overwrites dinp.
void rope_backward(float* dinp, const float* dout, const float* cos_t, const float* sin_t, int T, int NH, int HD) {
  const int H = HD / 2;
  for (int t = 0; t < T; ++t) {
    const float* c = cos_t + (size_t)t * H;
    const float* s = sin_t + (size_t)t * H;
    for (int h = 0; h < NH; ++h) {
      const float* d = dout + ((size_t)t * NH + h) * HD;
      float* dx = dinp + ((size_t)t * NH + h) * HD;
      for (int i = 0; i < H; ++i) {
        const float d1 = d[i], d2 = d[i + H];
        dx[i] = d1 * c[i] + d2 * s[i];
        dx[i + H] = d2 * c[i] - d1 * s[i];
      }
    }
  }
}

}  // namespace dfm
