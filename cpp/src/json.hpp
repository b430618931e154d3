// A small JSON reader, enough for manifest.json (no JSON library is assumed on the target).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace adainrt::json {

class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One JSON value. Objects keep their members in file order; numbers are doubles.
class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> items;        // Array elements, or Object member values
  std::vector<std::string> keys;   // Object member names, parallel to items

  bool is(Type t) const { return type == t; }
  // The member named key of an object, or nullptr (also when this is not an object).
  const Value* find(const std::string& key) const;
};

// Parses a whole document; throws ParseError naming the byte offset of the problem.
Value parse(const std::string& text);

}  // namespace adainrt::json
