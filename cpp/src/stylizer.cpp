#include "adainrt/stylizer.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <openvino/openvino.hpp>
#include <sstream>

#include "manifest.hpp"
#include "sha256.hpp"

namespace adainrt {

Error::Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

namespace {

Error invalid(const std::string& message) { return Error(ErrorCode::InvalidArgument, message); }

// OpenVINO's messages span lines (file, line, then the reason); ours stay one line.
std::string one_line(const char* text) {
  std::string out;
  for (const char* p = text; *p != '\0'; ++p) {
    const bool space = *p == '\n' || *p == '\r' || *p == '\t' || *p == ' ';
    if (!space) out += *p;
    else if (!out.empty() && out.back() != ' ') out += ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// One compiled graph and its infer request (a request runs one inference at a time).
struct Graph {
  GraphFile file;
  ov::CompiledModel compiled;
  ov::InferRequest request;
};

ov::AnyMap compile_config(const Options& options) {
  const ov::element::Type precision = options.precision == Precision::bf16 ? ov::element::bf16 : ov::element::f32;
  ov::AnyMap config{ov::hint::inference_precision(precision),
                    ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
  if (options.num_threads > 0) config.emplace(ov::inference_num_threads(options.num_threads));
  return config;
}

// The manifest's tensor names must be the graph's: the Stylizer feeds and reads them by name.
void check_ports(const std::vector<ov::Output<const ov::Node>>& ports, const std::vector<std::string>& names,
                 const std::string& path, const char* kind) {
  for (const std::string& name : names) {
    bool found = std::any_of(ports.begin(), ports.end(), [&](const auto& port) { return port.get_names().count(name); });
    if (!found) {
      throw Error(ErrorCode::Model, path + ": manifest.json names the " + kind + " \"" + name +
                                        "\" but the graph has no such tensor; export the folder again with --overwrite");
    }
  }
}

Graph load_graph(ov::Core& core, const GraphFile& file, const ov::AnyMap& config, bool verify_hash) {
  std::error_code ignored;
  if (!std::filesystem::is_regular_file(file.path, ignored)) {
    throw Error(ErrorCode::Model, file.path + ": listed in manifest.json but missing; export the folder again");
  }
  if (verify_hash && sha256_file(file.path) != file.sha256) {
    throw Error(ErrorCode::Model, file.path + " is not the graph its manifest.json describes (its SHA-256 differs: "
                                  "changed after export, or an export was interrupted); export the folder again");
  }
  Graph graph{file, {}, {}};
  try {
    graph.compiled = core.compile_model(file.path, "CPU", config);
    graph.request = graph.compiled.create_infer_request();
  } catch (const ov::Exception& exc) {
    throw Error(ErrorCode::Model, file.path + ": OpenVINO cannot load it (" + one_line(exc.what()) + ")");
  }
  check_ports(graph.compiled.inputs(), file.inputs, file.path, "input");
  check_ports(graph.compiled.outputs(), file.outputs, file.path, "output");
  return graph;
}

// OpenVINO tensors over caller memory. Inputs are only read; ov::Tensor has no const form.
ov::Tensor wrap(const float* data, const ov::Shape& shape) {
  return ov::Tensor(ov::element::f32, shape, const_cast<float*>(data));
}

ov::Shape nchw_shape(int width, int height) {
  return {1, 3, static_cast<size_t>(height), static_cast<size_t>(width)};
}

// 8-bit interleaved RGB -> float NCHW in [0, 1]; x / 255 in float, as the Python runtime does.
void rgb8_to_nchw(const std::uint8_t* rgb, int width, int height, std::vector<float>& out) {
  const size_t plane = static_cast<size_t>(width) * static_cast<size_t>(height);
  out.resize(3 * plane);
  for (size_t i = 0; i < plane; ++i) {
    for (size_t c = 0; c < 3; ++c) out[c * plane + i] = static_cast<float>(rgb[3 * i + c]) / 255.0f;
  }
}

// Clip to [0, 1] (NaN -> 0): the graphs' output is nominally [0, 1] but not clipped.
inline float clip01(float v) { return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; }

inline std::uint8_t quantize(float v) { return static_cast<std::uint8_t>(clip01(v) * 255.0f + 0.5f); }

std::string size_text(int width, int height) { return std::to_string(width) + "x" + std::to_string(height); }

void check_bytes(const Image& image, const char* what) {
  const size_t expected =
      static_cast<size_t>(std::max(image.width, 0)) * static_cast<size_t>(std::max(image.height, 0)) * 3;
  if (image.rgb.size() != expected) {
    throw invalid(std::string(what) + ": a " + size_text(image.width, image.height) + " image has " +
                  std::to_string(image.rgb.size()) + " bytes, not width * height * 3 = " + std::to_string(expected));
  }
}

}  // namespace

struct Stylizer::Impl {
  std::string model_dir;
  Manifest manifest;
  ov::Core core;
  Graph encoder, style, decoder;
  std::mutex mutex;           // one inference at a time per request (see the header)
  std::vector<float> buffer;  // 8-bit input as float NCHW, reused across frames

  Impl(const std::string& dir, const Options& options) : model_dir(dir), manifest(read_manifest(dir)) {
    if (options.num_threads < 0) throw invalid("num_threads must be >= 0 (0: OpenVINO's default), got " +
                                               std::to_string(options.num_threads));
    try {
      if (!options.cache_dir.empty()) core.set_property(ov::cache_dir(options.cache_dir));
    } catch (const ov::Exception& exc) {
      throw invalid("cache_dir " + options.cache_dir + ": " + one_line(exc.what()));
    }
    const ov::AnyMap config = compile_config(options);
    encoder = load_graph(core, manifest.encoder, config, options.verify_hashes);
    style = load_graph(core, manifest.style, config, options.verify_hashes);
    decoder = load_graph(core, manifest.decoder, config, options.verify_hashes);
  }

  void check_image(const void* data, int width, int height, const char* what) const {
    if (data == nullptr) throw invalid(std::string(what) + ": no pixel buffer (null pointer)");
    if (width < manifest.min_size || height < manifest.min_size) {
      throw invalid(std::string(what) + ": " + size_text(width, height) + " is too small; AdaIN needs at least " +
                    size_text(manifest.min_size, manifest.min_size) + " pixels (the encoder downsamples " +
                    std::to_string(manifest.pad_multiple) + "x)");
    }
  }

  void check_style(const StyleStats& stats) const {
    const size_t n = static_cast<size_t>(manifest.channels);
    if (stats.mean.size() != n || stats.std.size() != n) {
      throw invalid("style statistics have " + std::to_string(stats.mean.size()) + " means and " +
                    std::to_string(stats.std.size()) + " stds; this model needs " + std::to_string(n) +
                    " of each (compute them with style_stats)");
    }
  }

  static void infer(Graph& graph) {
    try {
      graph.request.infer();
    } catch (const ov::Exception& exc) {
      throw Error(ErrorCode::Inference, graph.file.path + ": OpenVINO failed running it (" + one_line(exc.what()) + ")");
    }
  }

  StyleStats style_stats(const float* nchw, int width, int height) {
    style.request.set_tensor(manifest.style.inputs[0], wrap(nchw, nchw_shape(width, height)));
    infer(style);
    const size_t n = static_cast<size_t>(manifest.channels);
    auto read = [&](const std::string& name) {
      ov::Tensor out = style.request.get_tensor(name);
      if (out.get_size() != n) {
        throw Error(ErrorCode::Inference, manifest.style.path + ": output \"" + name + "\" has " +
                                              std::to_string(out.get_size()) + " values, expected " + std::to_string(n));
      }
      const float* data = out.data<const float>();
      return std::vector<float>(data, data + n);
    };
    return StyleStats{read(manifest.style.outputs[0]), read(manifest.style.outputs[1])};
  }

  // Encoder then decoder; the decoder's image is padded to the pad multiple, so callers crop.
  ov::Tensor run(const float* nchw, int width, int height, const StyleStats& stats, float alpha) {
    const GraphFile& d = manifest.decoder;
    const ov::Shape stat_shape = {1, static_cast<size_t>(manifest.channels), 1, 1};
    encoder.request.set_tensor(manifest.encoder.inputs[0], wrap(nchw, nchw_shape(width, height)));
    infer(encoder);
    // relu4_1 goes from one request to the other without a copy.
    decoder.request.set_tensor(d.inputs[0], encoder.request.get_tensor(manifest.encoder.outputs[0]));
    decoder.request.set_tensor(d.inputs[1], wrap(stats.mean.data(), stat_shape));
    decoder.request.set_tensor(d.inputs[2], wrap(stats.std.data(), stat_shape));
    decoder.request.set_tensor(d.inputs[3], wrap(&alpha, {1}));
    infer(decoder);
    ov::Tensor image = decoder.request.get_tensor(d.outputs[0]);
    const ov::Shape shape = image.get_shape();
    if (shape.size() != 4 || shape[0] != 1 || shape[1] != 3 || shape[2] < static_cast<size_t>(height) ||
        shape[3] < static_cast<size_t>(width)) {
      throw Error(ErrorCode::Inference, d.path + ": output image has shape " + image.get_shape().to_string() +
                                            ", not [1, 3, >=" + std::to_string(height) + ", >=" +
                                            std::to_string(width) + "]");
    }
    return image;
  }

  // Calls `store(channel, y, x, value)` for each pixel of the padded image cropped to width x height.
  template <typename Store>
  static void crop(const ov::Tensor& image, int width, int height, Store store) {
    const size_t rows = image.get_shape()[2], cols = image.get_shape()[3];
    const float* data = image.data<const float>();
    for (size_t c = 0; c < 3; ++c) {
      for (size_t y = 0; y < static_cast<size_t>(height); ++y) {
        const float* row = data + (c * rows + y) * cols;
        for (size_t x = 0; x < static_cast<size_t>(width); ++x) store(c, y, x, row[x]);
      }
    }
  }
};

void check_alpha(float alpha) {
  if (!(alpha >= 0.0f && alpha <= 1.0f)) {  // also refuses NaN
    std::ostringstream text;
    text << "alpha must be in [0, 1] (0 = the content reconstructed, 1 = fully stylized), got " << alpha;
    throw invalid(text.str());
  }
}

Stylizer::Stylizer(const std::string& model_dir, const Options& options)
    : impl_(std::make_unique<Impl>(model_dir, options)) {}
Stylizer::~Stylizer() = default;
Stylizer::Stylizer(Stylizer&&) noexcept = default;
Stylizer& Stylizer::operator=(Stylizer&&) noexcept = default;

Stylizer::Impl& Stylizer::impl() const {
  if (!impl_) throw invalid("this Stylizer was moved from; use the one it was moved to");
  return *impl_;
}

StyleStats Stylizer::style_stats(const Image& style) {
  check_bytes(style, "style");
  return style_stats(style.rgb.data(), style.width, style.height);
}

StyleStats Stylizer::style_stats(const std::uint8_t* rgb, int width, int height) {
  Impl& s = impl();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.check_image(rgb, width, height, "style");
  rgb8_to_nchw(rgb, width, height, s.buffer);
  return s.style_stats(s.buffer.data(), width, height);
}

StyleStats Stylizer::style_stats_nchw(const float* nchw, int width, int height) {
  Impl& s = impl();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.check_image(nchw, width, height, "style");
  return s.style_stats(nchw, width, height);
}

Image Stylizer::stylize(const Image& content, const StyleStats& style, float alpha) {
  check_bytes(content, "content");
  Image out{content.width, content.height, std::vector<std::uint8_t>(content.rgb.size())};
  stylize(content.rgb.data(), content.width, content.height, style, alpha, out.rgb.data());
  return out;
}

void Stylizer::stylize(const std::uint8_t* rgb, int width, int height, const StyleStats& style, float alpha,
                       std::uint8_t* out_rgb) {
  Impl& s = impl();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.check_image(rgb, width, height, "content");
  if (out_rgb == nullptr) throw invalid("output: no pixel buffer (null pointer)");
  s.check_style(style);
  check_alpha(alpha);
  rgb8_to_nchw(rgb, width, height, s.buffer);
  const ov::Tensor image = s.run(s.buffer.data(), width, height, style, alpha);
  const size_t w = static_cast<size_t>(width);
  Impl::crop(image, width, height,
             [&](size_t c, size_t y, size_t x, float v) { out_rgb[(y * w + x) * 3 + c] = quantize(v); });
}

void Stylizer::stylize_nchw(const float* nchw, int width, int height, const StyleStats& style, float alpha,
                            float* out_nchw) {
  Impl& s = impl();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.check_image(nchw, width, height, "content");
  if (out_nchw == nullptr) throw invalid("output: no buffer (null pointer)");
  s.check_style(style);
  check_alpha(alpha);
  const ov::Tensor image = s.run(nchw, width, height, style, alpha);
  const size_t w = static_cast<size_t>(width), plane = w * static_cast<size_t>(height);
  Impl::crop(image, width, height,
             [&](size_t c, size_t y, size_t x, float v) { out_nchw[c * plane + y * w + x] = clip01(v); });
}

int Stylizer::min_size() const { return impl().manifest.min_size; }
int Stylizer::channels() const { return impl().manifest.channels; }
const std::string& Stylizer::model_dir() const { return impl().model_dir; }

}  // namespace adainrt
