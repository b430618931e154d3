// The C ABI over adainrt::Stylizer: no exception crosses it; each becomes a code and a message.
#include "adainrt/adainrt.h"

#include <algorithm>
#include <new>
#include <string>

#include "adainrt/stylizer.hpp"

struct adainrt_stylizer {
  adainrt::Stylizer stylizer;
};

namespace {

thread_local std::string last_error;

int fail(int code, const std::string& message) {
  last_error = message;
  return code;
}

// Runs body, turning exceptions into return codes; clears the message first so that
// adainrt_last_error() always describes this thread's latest call.
template <typename Body>
int guarded(Body body) {
  last_error.clear();
  try {
    body();
    return ADAINRT_OK;
  } catch (const adainrt::Error& exc) {
    return fail(static_cast<int>(exc.code()), exc.what());
  } catch (const std::bad_alloc&) {
    return fail(ADAINRT_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& exc) {
    return fail(ADAINRT_ERROR_INTERNAL, exc.what());
  } catch (...) {
    return fail(ADAINRT_ERROR_INTERNAL, "unknown error");
  }
}

adainrt::Stylizer& checked(adainrt_stylizer* handle) {
  if (handle == nullptr) throw adainrt::Error(adainrt::ErrorCode::InvalidArgument, "null adainrt_stylizer handle");
  return handle->stylizer;
}

// Statistics given as two C arrays of the model's channel count.
adainrt::StyleStats stats_from(const adainrt::Stylizer& stylizer, const float* mean, const float* std) {
  if (mean == nullptr || std == nullptr) {
    throw adainrt::Error(adainrt::ErrorCode::InvalidArgument, "style statistics: null mean or std array");
  }
  const int n = stylizer.channels();
  return adainrt::StyleStats{{mean, mean + n}, {std, std + n}};
}

void stats_to(const adainrt::StyleStats& stats, float* mean, float* std) {
  if (mean == nullptr || std == nullptr) {
    throw adainrt::Error(adainrt::ErrorCode::InvalidArgument, "style statistics: null mean or std output array");
  }
  std::copy(stats.mean.begin(), stats.mean.end(), mean);
  std::copy(stats.std.begin(), stats.std.end(), std);
}

}  // namespace

extern "C" {

int adainrt_open(const char* model_dir, int precision, int num_threads, adainrt_stylizer** out) {
  if (out != nullptr) *out = nullptr;
  return guarded([&] {
    if (out == nullptr || model_dir == nullptr) {
      throw adainrt::Error(adainrt::ErrorCode::InvalidArgument, "adainrt_open: null model_dir or out pointer");
    }
    if (precision != ADAINRT_PRECISION_F32 && precision != ADAINRT_PRECISION_BF16) {
      throw adainrt::Error(adainrt::ErrorCode::InvalidArgument,
                           "unknown precision " + std::to_string(precision) + "; use ADAINRT_PRECISION_F32 or _BF16");
    }
    adainrt::Options options;
    options.precision = precision == ADAINRT_PRECISION_BF16 ? adainrt::Precision::bf16 : adainrt::Precision::f32;
    options.num_threads = num_threads;
    *out = new adainrt_stylizer{adainrt::Stylizer(model_dir, options)};
  });
}

void adainrt_close(adainrt_stylizer* stylizer) { delete stylizer; }

int adainrt_channels(const adainrt_stylizer* stylizer) {
  return stylizer == nullptr ? 0 : stylizer->stylizer.channels();
}

int adainrt_style_stats_rgb8(adainrt_stylizer* stylizer, const uint8_t* rgb, int width, int height, float* mean,
                             float* std) {
  return guarded([&] { stats_to(checked(stylizer).style_stats(rgb, width, height), mean, std); });
}

int adainrt_style_stats_nchw(adainrt_stylizer* stylizer, const float* nchw, int width, int height, float* mean,
                             float* std) {
  return guarded([&] { stats_to(checked(stylizer).style_stats_nchw(nchw, width, height), mean, std); });
}

int adainrt_stylize_rgb8(adainrt_stylizer* stylizer, const uint8_t* rgb, int width, int height, const float* mean,
                         const float* std, float alpha, uint8_t* out_rgb) {
  return guarded([&] {
    adainrt::Stylizer& s = checked(stylizer);
    s.stylize(rgb, width, height, stats_from(s, mean, std), alpha, out_rgb);
  });
}

int adainrt_stylize_nchw(adainrt_stylizer* stylizer, const float* nchw, int width, int height, const float* mean,
                         const float* std, float alpha, float* out_nchw) {
  return guarded([&] {
    adainrt::Stylizer& s = checked(stylizer);
    s.stylize_nchw(nchw, width, height, stats_from(s, mean, std), alpha, out_nchw);
  });
}

const char* adainrt_last_error(void) { return last_error.c_str(); }

}  // extern "C"
