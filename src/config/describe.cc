// describe_options(), describe_applied_markdown() and describe_options_man(): the option reference,
// the README's list of what Midge applies and the OPTIONS section of midge.conf(5), all generated
// from the table (for --help-config and the docs).
#include <algorithm>
#include <vector>

#include "config/option_table.h"

namespace midge::config {
namespace {

std::string_view scope_name(Scope s) {
  switch (s) {
    case Scope::kGlobal: return "global";
    case Scope::kListener: return "listener";
    case Scope::kSecurity: return "security";
    case Scope::kBridge: return "bridge";
  }
  return "?";
}

std::string type_name(const Option& o) {
  switch (o.kind) {
    case Kind::kBool: return "bool";
    case Kind::kUint:
    case Kind::kInt: return "int " + std::to_string(o.min) + ".." + std::to_string(o.max);
    case Kind::kString: return "string";
    case Kind::kPath: return "path";
    case Kind::kEnum: {
      std::string s(o.choices);
      return s.empty() ? "word" : s;
    }
    case Kind::kDuration: return "duration";
    case Kind::kListener: return "port [address]";
    case Kind::kSpecial: return "text";
    case Kind::kUnsupported: return "text";
  }
  return "?";
}

void pad(std::string& line, std::size_t column) {
  line.append(line.size() < column ? column - line.size() : 1, ' ');
}

std::string_view state_name(Applied a) {
  switch (a) {
    case Applied::kYes: return "applied";
    case Applied::kWarn: return "warning";
    case Applied::kRefuse: return "refused";
  }
  return "?";
}

std::string state_note(const Option& o) {
  if (o.applied == Applied::kYes) return "";
  std::string note = "[" + std::string(state_name(o.applied)) + ": " + std::string(o.why);
  if (!o.inert.empty()) note += "; '" + std::string(o.inert) + "' is accepted";
  return note + "] ";
}

// `name` (or "`name` unless `false`") for the README list.
std::string markdown_name(const Option& o) {
  std::string s = "`" + std::string(o.name) + "`";
  if (!o.inert.empty()) s += " (except `" + std::string(o.inert) + "`)";
  return s;
}

// The rows of one state, grouped by reason in table order: "- `a`, `b`: why."
std::string markdown_groups(Applied state) {
  std::vector<std::string_view> reasons;
  for (const Option& o : option_table()) {
    if (o.applied == state && std::find(reasons.begin(), reasons.end(), o.why) == reasons.end()) reasons.push_back(o.why);
  }
  std::string out;
  for (std::string_view why : reasons) {
    std::string names;
    for (const Option& o : option_table()) {
      if (o.applied == state && o.why == why) names += (names.empty() ? "" : ", ") + markdown_name(o);
    }
    out += "  - " + names + ": " + std::string(why) + ".\n";
  }
  return out;
}


// ---------------------------------------------------------------- midge.conf(5)

// Text safe inside a roff paragraph: a backslash is written \e, and a line may not start with a
// control character ('.' or '\'').
std::string roff_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\e";
    } else {
      if ((c == '.' || c == '\'') && (out.empty() || out.back() == '\n')) out += "\\&";
      out += c;
    }
  }
  return out;
}

// A literal word (option name, value) inside a line: hyphens are minus signs, so that a copied
// name works.
std::string roff_literal(std::string_view s) {
  std::string out;
  for (char c : s) out += c == '-' ? "\\-" : c == '\\' ? "\\e" : std::string(1, c);
  return out;
}

std::string_view scope_heading(Scope s) {
  switch (s) {
    case Scope::kGlobal: return "General options";
    case Scope::kListener: return "Listener options";
    case Scope::kSecurity: return "Security options";
    case Scope::kBridge: return "Bridge options";
  }
  return "?";
}

std::string man_default(const Option& o, const Config& config, const Listener& listener) {
  const std::string value = o.show ? o.show(config, listener) : std::string();
  if (value.empty() || value == "-" || value == "\"\"") return "Default: none.";
  return "Default: \\fB" + roff_literal(value) + "\\fR.";
}

std::string man_state(const Option& o) {
  std::string inert = o.inert.empty() ? "" : " The value \\fB" + roff_literal(o.inert) + "\\fR is accepted silently.";
  switch (o.applied) {
    case Applied::kYes: return "";
    case Applied::kWarn: return "\n.br\nNot applied by Midge: the broker starts and logs a warning (" + roff_text(o.why) + ")." + inert;
    case Applied::kRefuse: return "\n.br\nRefused: the broker does not start (" + roff_text(o.why) + ")." + inert;
  }
  return "";
}

std::string man_entry(const Option& o, const Config& config, const Listener& listener) {
  std::string out = ".TP\n.BI \"" + roff_literal(o.name) + " \" \"" + roff_literal(type_name(o)) + "\"\n";
  out += roff_text(o.help);
  if (!o.help.empty() && o.help.back() != '.') out += '.';
  out += "\n.br\n" + man_default(o, config, listener);
  if (o.flags & kReloadable) out += " Re-read on SIGHUP.";
  if (o.flags & kMidgeExtension) out += " A Midge option (not in Mosquitto).";
  return out + man_state(o) + "\n";
}

}  // namespace

std::string describe_options_man() {
  const Config config;
  const Listener listener;
  std::string out;
  for (Scope scope : {Scope::kGlobal, Scope::kListener, Scope::kSecurity, Scope::kBridge}) {
    out += ".SS \"" + std::string(scope_heading(scope)) + "\"\n";
    for (const Option& o : option_table()) {
      if (o.scope == scope) out += man_entry(o, config, listener);
    }
  }
  return out;
}

std::string describe_applied_markdown() {
  std::string applied;
  for (const Option& o : option_table()) {
    if (o.applied == Applied::kYes) applied += (applied.empty() ? "" : ", ") + markdown_name(o);
  }
  return "- Applied: " + applied + ".\n" +
         "- Accepted but not applied: the broker starts, and logs\n"
         "  `Warning: FILE:LINE: option 'NAME' is not applied by Midge yet (REASON)`:\n" +
         markdown_groups(Applied::kWarn) +
         "- Refused until implemented, because ignoring them would weaken security: the broker stops\n"
         "  with `Error: FILE:LINE: option 'NAME' is not supported by Midge yet...` and exit code 3:\n" +
         markdown_groups(Applied::kRefuse);
}

std::string describe_options() {
  const Config config;
  const Listener listener;
  std::string out = "option                          scope     state    type                  default       notes\n";
  for (const Option& o : option_table()) {
    std::string line(o.name);
    pad(line, 32);
    line += scope_name(o.scope);
    pad(line, 42);
    line += state_name(o.applied);
    pad(line, 51);
    line += type_name(o);
    pad(line, 73);
    line += o.show ? o.show(config, listener) : std::string("-");
    pad(line, 87);
    line += state_note(o);
    if (o.flags & kMidgeExtension) line += "[midge] ";
    if (o.flags & kReloadable) line += "[reload] ";
    line += o.help;
    out += line + '\n';
  }
  return out;
}

}  // namespace midge::config
