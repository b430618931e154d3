#include "manifest.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "adainrt/stylizer.hpp"
#include "json.hpp"

namespace adainrt {
namespace {

namespace fs = std::filesystem;
using json::Value;

// What this reader understands (adainrt/contract.py: MANIFEST_FORMAT, MANIFEST_VERSION).
constexpr const char* kFormat = "adainrt-graphs";
constexpr double kFormatVersion = 1;
constexpr const char* kPrecision = "fp32";  // bf16 runs the FP32 graphs, lowered by OpenVINO

Error model_error(const std::string& message) { return Error(ErrorCode::Model, message); }

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

bool has_control(const std::string& text) { return std::any_of(text.begin(), text.end(), is_control); }

// A string from the manifest as a message may show it: on one line (control characters as '?'), cut short.
std::string printable(const std::string& text, size_t limit = 80) {
  std::string out = text.substr(0, limit);
  std::replace_if(out.begin(), out.end(), is_control, '?');
  return text.size() > limit ? out + "..." : out;
}

std::string reexport_hint(const std::string& model_dir) {
  return "; export the folder again with `adainrt export --output " + model_dir + " --overwrite`";
}

const Value& member(const Value& object, const std::string& key, Value::Type type, const std::string& where) {
  const Value* value = object.find(key);
  if (value == nullptr || !value->is(type)) {
    throw model_error(where + ": \"" + key + "\" is missing or of the wrong type");
  }
  return *value;
}

int positive_int(const Value& object, const std::string& key, const std::string& where) {
  double number = member(object, key, Value::Type::Number, where).number;
  if (number < 1 || number > 1 << 20 || number != static_cast<int>(number)) {
    throw model_error(where + ": \"" + key + "\" must be a positive integer");
  }
  return static_cast<int>(number);
}

void expect_string(const Value& object, const std::string& key, const std::string& wanted, const std::string& where) {
  const std::string& got = member(object, key, Value::Type::String, where).string;
  if (got != wanted) {
    throw model_error(where + ": \"" + key + "\" is \"" + printable(got) + "\"; this reader handles \"" + wanted +
                      "\" only");
  }
}

// Far above any manifest an export writes (a few kB), as adainrt/contract.py's MAX_MANIFEST_BYTES.
constexpr std::uintmax_t kMaxManifestBytes = 1 << 20;

Value parse_file(const fs::path& path, const std::string& model_dir) {
  std::error_code error;
  const std::uintmax_t size = fs::file_size(path, error);
  if (!error && size > kMaxManifestBytes) {
    throw model_error(path.string() + ": " + std::to_string(size) + " bytes, too large for a manifest (at most " +
                      std::to_string(kMaxManifestBytes) + ")" + reexport_hint(model_dir));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw model_error(path.string() + ": cannot be read" + reexport_hint(model_dir));
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::ParseError& exc) {
    throw model_error(path.string() + ": " + exc.what() + reexport_hint(model_dir));
  }
}

std::vector<std::string> tensor_names(const Value& entry, const std::string& key, const std::string& where) {
  std::vector<std::string> names;
  for (const Value& tensor : member(entry, key, Value::Type::Array, where).items) {
    const std::string& name = member(tensor, "name", Value::Type::String, where + " " + key).string;
    if (has_control(name)) {
      throw model_error(where + " " + key + ": tensor name \"" + printable(name) + "\" is not a name");
    }
    names.push_back(name);
  }
  return names;
}

// Index in `graphs` of the FP32 graph in `role` ("encoder", "style", "decoder").
size_t entry_index(const Value& graphs, const std::string& role, const fs::path& dir) {
  for (size_t i = 0; i < graphs.keys.size(); ++i) {
    const Value* graph = graphs.items[i].find("graph");
    const Value* precision = graphs.items[i].find("precision");
    if (graph != nullptr && precision != nullptr && graph->string == role && precision->string == kPrecision) {
      return i;
    }
  }
  throw model_error(dir.string() + ": its manifest.json lists no " + kPrecision + " " + role +
                    " graph; export the split graphs with `adainrt export --output " + dir.string() +
                    " --form split --precision fp32`");
}

// A graph's name in manifest.json is a file name inside the model folder, nothing else: no folder part,
// not "." or "..", no control character (adainrt/contract.py's is_plain_file_name). A path there could make the library
// load another folder's graphs, or open and parse any file it can read.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find_first_of("/\\") == std::string::npos &&
         !has_control(name);
}

GraphFile graph_file(const Value& graphs, size_t index, const fs::path& dir, const std::string& where) {
  const Value& entry = graphs.items[index];
  const std::string& name = graphs.keys[index];
  if (!is_plain_file_name(name)) {
    throw model_error(where + ": graph \"" + printable(name) + "\" is not a file name inside the folder (graphs "
                      "are named by file name alone)" + reexport_hint(dir.string()));
  }
  const std::string at = where + " graphs." + printable(name);
  return GraphFile{(dir / graphs.keys[index]).string(), member(entry, "sha256", Value::Type::String, at).string,
                   tensor_names(entry, "inputs", at), tensor_names(entry, "outputs", at)};
}

void expect_arity(const GraphFile& graph, size_t inputs, size_t outputs) {
  if (graph.inputs.size() != inputs || graph.outputs.size() != outputs) {
    throw model_error(graph.path + ": manifest.json gives it " + std::to_string(graph.inputs.size()) + " inputs and " +
                      std::to_string(graph.outputs.size()) + " outputs; expected " + std::to_string(inputs) +
                      " and " + std::to_string(outputs));
  }
}

// The decoder is fed the encoder's and the style graph's outputs by name: they must agree.
void check_wiring(const Manifest& m) {
  expect_arity(m.encoder, 1, 1);
  expect_arity(m.style, 1, 2);
  expect_arity(m.decoder, 4, 1);
  const std::vector<std::string> fed = {m.encoder.outputs[0], m.style.outputs[0], m.style.outputs[1]};
  for (size_t i = 0; i < fed.size(); ++i) {
    if (m.decoder.inputs[i] != fed[i]) {
      throw model_error(m.decoder.path + ": input " + std::to_string(i) + " is \"" + printable(m.decoder.inputs[i]) +
                        "\" in manifest.json, but the graph feeding it outputs \"" + printable(fed[i]) + "\"");
    }
  }
}

// relu4_1's channel count: dimension 1 of the style graph's first output ([1, C, 1, 1]).
int style_channels(const Value& style_entry, const std::string& where) {
  const Value& outputs = member(style_entry, "outputs", Value::Type::Array, where);
  if (!outputs.items.empty()) {
    const Value& shape = member(outputs.items[0], "shape", Value::Type::Array, where + " style output");
    if (shape.items.size() == 4 && shape.items[1].is(Value::Type::Number) && shape.items[1].number >= 1) {
      return static_cast<int>(shape.items[1].number);
    }
  }
  throw model_error(where + ": the style graph's output shape is not [1, C, 1, 1]");
}

void check_preprocessing(const Value& pre, const std::string& where) {
  expect_string(pre, "color_order", "RGB", where);
  expect_string(pre, "layout", "NCHW", where);
  expect_string(pre, "dtype", "float32", where);
  const Value& range = member(pre, "value_range", Value::Type::Array, where);
  if (range.items.size() != 2 || range.items[0].number != 0.0 || range.items[1].number != 1.0) {
    throw model_error(where + ": \"value_range\" is not [0, 1]; this reader handles [0, 1] only");
  }
}

}  // namespace

Manifest read_manifest(const std::string& model_dir) {
  const fs::path dir(model_dir);
  std::error_code ignored;
  if (!fs::is_directory(dir, ignored)) {
    throw model_error(model_dir + ": no such model folder; create one with `adainrt export --output " + model_dir +
                      "`");
  }
  const fs::path path = dir / "manifest.json";
  if (!fs::is_regular_file(path, ignored)) {
    throw model_error(model_dir + ": no manifest.json (not a folder written by `adainrt export`, or by an older "
                      "adainrt)" + reexport_hint(model_dir));
  }
  const std::string where = path.string();
  const Value root = parse_file(path, model_dir);
  if (!root.is(Value::Type::Object) || root.find("format") == nullptr || root.find("format")->string != kFormat) {
    throw model_error(where + ": not an adainrt manifest" + reexport_hint(model_dir));
  }
  if (member(root, "format_version", Value::Type::Number, where).number > kFormatVersion) {
    throw model_error(where + ": its format is newer than this reader's; rebuild against a newer adainrt_cpp");
  }
  const Value& pre = member(root, "preprocessing", Value::Type::Object, where);
  check_preprocessing(pre, where + " preprocessing");
  const Value& graphs = member(root, "graphs", Value::Type::Object, where);

  Manifest manifest;
  const size_t style = entry_index(graphs, "style", dir);
  manifest.encoder = graph_file(graphs, entry_index(graphs, "encoder", dir), dir, where);
  manifest.style = graph_file(graphs, style, dir, where);
  manifest.decoder = graph_file(graphs, entry_index(graphs, "decoder", dir), dir, where);
  manifest.min_size = positive_int(pre, "min_size", where + " preprocessing");
  manifest.pad_multiple = positive_int(pre, "pad_multiple", where + " preprocessing");
  manifest.channels = style_channels(graphs.items[style], where);
  check_wiring(manifest);
  return manifest;
}

}  // namespace adainrt
