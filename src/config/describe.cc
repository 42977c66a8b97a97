// describe_options(): the option reference, generated from the table (for --help and the docs).
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
    case Kind::kUnsupported: return "ignored";
  }
  return "?";
}

void pad(std::string& line, std::size_t column) {
  line.append(line.size() < column ? column - line.size() : 1, ' ');
}

}  // namespace

std::string describe_options() {
  const Config config;
  const Listener listener;
  std::string out = "option                          scope     type                  default       notes\n";
  for (const Option& o : option_table()) {
    std::string line(o.name);
    pad(line, 32);
    line += scope_name(o.scope);
    pad(line, 42);
    line += type_name(o);
    pad(line, 64);
    line += o.show ? o.show(config, listener) : std::string("-");
    pad(line, 78);
    if (o.kind == Kind::kUnsupported) line += "[not supported yet] ";
    if (o.flags & kMidgeExtension) line += "[midge] ";
    if (o.flags & kReloadable) line += "[reload] ";
    line += o.help;
    out += line + '\n';
  }
  return out;
}

}  // namespace midge::config
