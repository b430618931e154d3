// adainrt from C++: AdaIN style transfer over the graphs written by `adainrt export`, on
// OpenVINO's CPU plugin. This header needs no OpenVINO header; link the target adainrt_cpp.
//
//   adainrt::Stylizer stylizer("models/");                       // reads models/manifest.json
//   adainrt::StyleStats style = stylizer.style_stats(painting);  // once per style
//   adainrt::Image out = stylizer.stylize(photo, style, 0.8f);   // per image or frame
//
// Thread safety: a Stylizer serializes its calls with an internal mutex, so sharing one between
// threads is safe but runs one image at a time (OpenVINO already uses every core for one
// image). For images in parallel, give each thread its own Stylizer. StyleStats are plain
// values: compute once, use from any thread and with any Stylizer of the same model folder.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "adainrt/export.h"

namespace adainrt {

// What kind of failure an Error is; the C ABI returns these values as its error codes.
enum class ErrorCode : int {
  InvalidArgument = 1,  // a bad image size, buffer, alpha or statistics
  Model = 2,            // the model folder, its manifest or a graph
  Inference = 3,        // OpenVINO failed while running a graph
};

// Every failure is thrown as an Error; its message names the bad input (folder, file, size,
// alpha) and, where there is one, the fix.
class ADAINRT_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

enum class Precision {
  f32,   // the Python runtime's numbers (its openvino and ort-cpu backends) to float rounding
  bf16,  // faster on CPUs with native bf16 (AVX512_BF16, AMX), less exact
};

struct Options {
  Precision precision = Precision::f32;
  int num_threads = 0;         // 0: OpenVINO's default (the machine's cores)
  std::string cache_dir;       // non-empty: OpenVINO keeps compiled graphs there (faster starts)
  bool verify_hashes = true;   // refuse graphs whose SHA-256 differs from manifest.json
};

// A style as AdaIN uses it: the per-channel mean and standard deviation of its relu4_1
// features (512 each for the full network, 128 for lite; channels() of the Stylizer that made them).
struct StyleStats {
  std::vector<float> mean;
  std::vector<float> std;
};

// Interleaved 8-bit RGB, rows top to bottom, no padding between rows: rgb.size() == width * height * 3.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;
};

// Throws Error(ErrorCode::InvalidArgument) unless 0 <= alpha <= 1: what stylize checks, for
// callers that want to refuse a bad alpha before loading a model.
ADAINRT_API void check_alpha(float alpha);

class ADAINRT_API Stylizer {
 public:
  // Opens a folder written by `adainrt export`: reads manifest.json, checks the graphs against
  // it and compiles the encoder, style and decoder graphs. Throws Error(ErrorCode::Model).
  explicit Stylizer(const std::string& model_dir, const Options& options = Options());
  ~Stylizer();
  Stylizer(Stylizer&&) noexcept;
  Stylizer& operator=(Stylizer&&) noexcept;
  Stylizer(const Stylizer&) = delete;
  Stylizer& operator=(const Stylizer&) = delete;

  // The style's statistics, from 8-bit RGB or from float NCHW [1, 3, height, width] in [0, 1].
  StyleStats style_stats(const Image& style);
  StyleStats style_stats(const std::uint8_t* rgb, int width, int height);
  StyleStats style_stats_nchw(const float* nchw, int width, int height);

  // Stylize content with a style at alpha in [0, 1] (0: the content reconstructed, 1: fully
  // stylized). The output has the content's size; values are clipped to [0, 1] and rounded
  // (x * 255 + 0.5) for 8-bit output. The pointer forms write into the caller's buffer
  // (width * height * 3 bytes, or 3 * height * width floats), so frames need no allocation.
  Image stylize(const Image& content, const StyleStats& style, float alpha = 1.0f);
  void stylize(const std::uint8_t* rgb, int width, int height, const StyleStats& style, float alpha,
               std::uint8_t* out_rgb);
  void stylize_nchw(const float* nchw, int width, int height, const StyleStats& style, float alpha,
                    float* out_nchw);

  int min_size() const;   // smallest width or height admitted, from the manifest
  int channels() const;   // length of StyleStats::mean and ::std, from the manifest
  const std::string& model_dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Impl& impl() const;
};

}  // namespace adainrt
