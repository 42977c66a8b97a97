// The declarative option table behind client_options.cc: one row per flag
// (names, which tools accept it, how many values, the "missing value"
// message, and the function that stores it).
#pragma once

#include <string>
#include <vector>

#include "tools/client_options.h"

namespace midge::tools {

using ApplyFn = bool (*)(ClientConfig& config, const std::vector<std::string>& values,
                         std::string& error);

struct OptionSpec {
  const char* short_name;  // "-t" or nullptr
  const char* long_name;   // "--topic" or nullptr
  unsigned tools;          // bit mask of Tool values
  int nargs;               // values after the flag (-D: 3, user-property: 4)
  const char* missing;     // message when values are missing
  ApplyFn apply;
};

// The row for `name` if `tool` accepts it, else nullptr.
const OptionSpec* find_option(Tool tool, const std::string& name);

// --help text on stdout.
void print_usage(Tool tool);

// -D / --property COMMAND NAME VALUE [VALUE2].
bool apply_property(ClientConfig& config, const std::vector<std::string>& values,
                    std::string& error);

// -L mqtt://[user[:pass]@]host[:port]/topic
bool apply_url(ClientConfig& config, const std::string& url, std::string& error);

}  // namespace midge::tools
