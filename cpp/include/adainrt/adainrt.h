/* adainrt's C ABI, for C programs and foreign-function callers (Python ctypes, Rust, C#, ...).
 *
 * The same library as the C++ class adainrt::Stylizer (stylizer.hpp), behind an opaque handle.
 * Every function that can fail returns ADAINRT_OK (0) or an error code; adainrt_last_error()
 * then gives the message (which names the bad folder, size or alpha). Images are interleaved
 * 8-bit RGB (width * height * 3 bytes) or float NCHW [1, 3, height, width] in [0, 1]. A style
 * is its statistics: adainrt_channels() means and as many stds, computed once.
 *
 * Threads: a handle may be shared (its calls are serialized); adainrt_last_error() is per
 * thread. Close each handle once, with adainrt_close().
 */
#ifndef ADAINRT_H
#define ADAINRT_H

#include <stdint.h>

#include "adainrt/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct adainrt_stylizer adainrt_stylizer;

/* Return codes (the values of adainrt::ErrorCode, plus ADAINRT_ERROR_INTERNAL). */
enum {
  ADAINRT_OK = 0,
  ADAINRT_ERROR_INVALID_ARGUMENT = 1, /* image size, null buffer, alpha, statistics */
  ADAINRT_ERROR_MODEL = 2,            /* model folder, manifest.json or a graph */
  ADAINRT_ERROR_INFERENCE = 3,        /* OpenVINO failed while running a graph */
  ADAINRT_ERROR_INTERNAL = 4          /* out of memory or an unexpected exception */
};

/* Precisions for adainrt_open. */
enum { ADAINRT_PRECISION_F32 = 0, ADAINRT_PRECISION_BF16 = 1 };

/* Opens a folder written by `adainrt export`. num_threads 0: OpenVINO's default. On success
 * *out is a handle for adainrt_close; on failure *out is NULL. */
ADAINRT_API int adainrt_open(const char* model_dir, int precision, int num_threads, adainrt_stylizer** out);
ADAINRT_API void adainrt_close(adainrt_stylizer* stylizer);

/* Length of each statistics vector (512 for the full network, 128 for lite); 0 for a NULL handle. */
ADAINRT_API int adainrt_channels(const adainrt_stylizer* stylizer);

/* A style's statistics into mean[channels] and std[channels]. */
ADAINRT_API int adainrt_style_stats_rgb8(adainrt_stylizer* stylizer, const uint8_t* rgb, int width, int height,
                                         float* mean, float* std);
ADAINRT_API int adainrt_style_stats_nchw(adainrt_stylizer* stylizer, const float* nchw, int width, int height,
                                         float* mean, float* std);

/* Stylizes content (alpha in [0, 1]) into out, of the content's size; output clipped to [0, 1]. */
ADAINRT_API int adainrt_stylize_rgb8(adainrt_stylizer* stylizer, const uint8_t* rgb, int width, int height,
                                     const float* mean, const float* std, float alpha, uint8_t* out_rgb);
ADAINRT_API int adainrt_stylize_nchw(adainrt_stylizer* stylizer, const float* nchw, int width, int height,
                                     const float* mean, const float* std, float alpha, float* out_nchw);

/* The message of this thread's last failed call ("" if none); valid until this thread's next call. */
ADAINRT_API const char* adainrt_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ADAINRT_H */
