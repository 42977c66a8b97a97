#include "tools/client_options.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "protocol/topic.h"
#include "tools/options_table.h"

namespace midge::tools {

const char* tool_name(Tool tool) {
  switch (tool) {
    case Tool::kPub: return "midge_pub";
    case Tool::kSub: return "midge_sub";
    case Tool::kRr: return "midge_rr";
  }
  return "midge";
}

void print_error(const ClientConfig& config, const std::string& line) {
  if (!config.quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

namespace {

void print_usage_hint(Tool tool) {
  std::fprintf(stderr, "\nUse '%s --help' to see usage.\n", tool_name(tool));
}

// Feeds one option (and the words after it) to the table. `args` starts at
// the option. Returns the number of words used, 0 on error (printed).
int apply_one(Tool tool, const std::vector<std::string>& args, size_t at, ClientConfig& config) {
  const std::string& name = args[at];
  const OptionSpec* spec = find_option(tool, name);
  if (spec == nullptr) {
    std::fprintf(stderr, "Error: Unknown option '%s'.\n", name.c_str());
    print_usage_hint(tool);
    return 0;
  }
  std::vector<std::string> values;
  for (int i = 1; i <= spec->nargs && at + i < args.size(); ++i) values.push_back(args[at + i]);
  // -D user-property takes one more value than the other properties.
  if (spec->nargs == 3 && values.size() >= 2 && values[1] == "user-property") {
    if (at + 4 < args.size()) values.push_back(args[at + 4]);
    else values.clear();
  }
  if (static_cast<int>(values.size()) < spec->nargs) {
    std::fprintf(stderr, "Error: %s\n\n", spec->missing);
    print_usage_hint(tool);
    return 0;
  }
  std::string error;
  if (!spec->apply(config, values, error)) {
    std::fprintf(stderr, "Error: %s\n", error.c_str());
    print_usage_hint(tool);
    return 0;
  }
  return 1 + static_cast<int>(values.size());
}

bool apply_all(Tool tool, const std::vector<std::string>& args, ClientConfig& config) {
  for (size_t i = 0; i < args.size();) {
    int used = apply_one(tool, args, i, config);
    if (used == 0) return false;
    i += static_cast<size_t>(used);
  }
  return true;
}

std::string config_file_path(Tool tool) {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && *xdg != '\0') return std::string(xdg) + "/" + tool_name(tool);
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return {};
  return std::string(home) + "/.config/" + tool_name(tool);
}

// One option per line: the option, then (after the first run of blanks) the
// rest of the line as its value. '#' lines and blank lines are skipped.
bool load_config_file(Tool tool, ClientConfig& config) {
  std::string path = config_file_path(tool);
  if (path.empty()) return true;
  std::ifstream in(path);
  if (!in) return true;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> args;
    size_t sp = line.find_first_of(" \t");
    args.push_back(line.substr(0, sp));
    if (sp != std::string::npos) {
      size_t start = line.find_first_not_of(" \t", sp);
      if (start != std::string::npos) args.push_back(line.substr(start));
    }
    if (!apply_all(tool, args, config)) return false;
  }
  return true;
}

int fail(Tool tool, const std::string& message) {
  std::fprintf(stderr, "Error: %s\n", message.c_str());
  print_usage_hint(tool);
  return 1;
}

int check_pub(const ClientConfig& c) {
  if (c.topics.empty() || c.mode == MessageMode::kNone) {
    std::fprintf(stderr, "Error: Both topic and message must be supplied.\n");
    print_usage(c.tool);
    return 1;
  }
  if (!protocol::is_valid_topic_name(c.topics[0])) {
    return fail(c.tool, "Invalid publish topic '" + c.topics[0] +
                            "', does it contain '+' or '#'?");
  }
  return -1;
}

int check_sub(const ClientConfig& c) {
  if (c.topics.empty()) return fail(c.tool, "You must specify a topic to subscribe to.");
  if (c.no_retain && c.retained_only) {
    std::fprintf(stderr, "\n");  // sic: mosquitto_sub starts this one with a blank line
    return fail(c.tool, "Combining '-R' and '--retained-only' makes no sense.");
  }
  for (const std::string& t : c.topics) {
    if (!protocol::is_valid_topic_filter(t)) {
      return fail(c.tool, "Invalid subscription topic '" + t +
                              "', are all '+' and '#' wildcards correct?");
    }
  }
  for (const std::string& t : c.filter_outs) {
    if (!protocol::is_valid_topic_filter(t)) {
      return fail(c.tool, "Invalid filter topic '" + t +
                              "', are all '+' and '#' wildcards correct?");
    }
  }
  for (const std::string& t : c.unsub_topics) {
    if (!protocol::is_valid_topic_filter(t)) {
      return fail(c.tool, "Invalid unsubscribe topic '" + t +
                              "', are all '+' and '#' wildcards correct?");
    }
  }
  return -1;
}

int check_rr(const ClientConfig& c) {
  if (c.topics.empty() || c.response_topic.empty() || c.mode == MessageMode::kNone) {
    std::fprintf(stderr, "Error: All of topic, message, and response topic must be supplied.\n");
    print_usage(c.tool);
    return 1;
  }
  if (!protocol::is_valid_topic_name(c.topics[0])) {
    return fail(c.tool, "Invalid publish topic '" + c.topics[0] +
                            "', does it contain '+' or '#'?");
  }
  if (!protocol::is_valid_topic_name(c.response_topic)) {
    return fail(c.tool, "Invalid response topic '" + c.response_topic +
                            "', does it contain '+' or '#'?");
  }
  return -1;
}

int check_common(const ClientConfig& c) {
  if (c.will_payload && !c.will_topic) {
    return fail(c.tool, "Will payload given, but no will topic given.");
  }
  if (c.will_retain && !c.will_topic) {
    return fail(c.tool, "Will retain given, but no will topic given.");
  }
  if (c.will_topic && !protocol::is_valid_topic_name(*c.will_topic)) {
    return fail(c.tool, "Invalid will topic '" + *c.will_topic +
                            "', does it contain '+' or '#'?");
  }
  if (c.certfile.empty() != c.keyfile.empty()) {
    return fail(c.tool, "Both certfile and keyfile must be provided if one of them is set.");
  }
  if (c.psk && (!c.cafile.empty() || !c.capath.empty())) {
    return fail(c.tool, "Only one of --psk or --cafile/--capath may be used at once.");
  }
  // --psk-identity alone is ignored (plain TCP), as mosquitto_pub does.
  if (c.psk && !c.psk_identity) return fail(c.tool, "--psk-identity required if --psk used.");
  if (!c.clean_session && c.id.empty() && c.id_prefix.empty()) {
    return fail(c.tool, "You must provide a client id if you are using the -c option.");
  }
  if (!c.unsupported.empty()) {
    std::fprintf(stderr, "Error: %s is not supported yet by %s.\n", c.unsupported.c_str(),
                 tool_name(c.tool));
    return 1;
  }
  return -1;
}

}  // namespace

int parse_options(Tool tool, int argc, char** argv, ClientConfig& config) {
  config = ClientConfig{};
  config.tool = tool;
  if (tool == Tool::kRr) config.version = protocol::Version::kV5;
  if (!load_config_file(tool, config)) return 1;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help") {
      print_usage(tool);
      return 1;
    }
  }
  if (!apply_all(tool, args, config)) return 1;
  int rc = check_common(config);
  if (rc >= 0) return rc;
  switch (tool) {
    case Tool::kPub: return check_pub(config);
    case Tool::kSub: return check_sub(config);
    case Tool::kRr: return check_rr(config);
  }
  return -1;
}

}  // namespace midge::tools
