// A tiny JSON writer for -F %j / %J. Output matches the layout mosquitto_sub
// produces (compact, or --pretty with tab indentation), so the tools can be
// swapped in scripts that compare output. nlohmann-json parses %J payloads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace midge::tools {

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty, std::string& out) : pretty_(pretty), out_(out) {}

  void begin_object();
  void end_object();
  void key(std::string_view name);
  void string_value(std::string_view value);
  void number_value(int64_t value);
  void null_value() { out_ += "null"; }
  // Appends `json` (a JSON document) re-printed in the writer's layout;
  // false (nothing written) if it is not valid JSON.
  bool raw_json_value(std::string_view json);

 private:
  void before_value();
  void newline_indent();

  bool pretty_;
  std::string& out_;
  int depth_ = 0;
  bool first_ = true;
};

// JSON string body escaping ("\"", "\\", control characters).
void append_json_escaped(std::string_view s, std::string& out);

}  // namespace midge::tools
