#include "tools/options_table.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

namespace midge::tools {
namespace {

constexpr unsigned kPub = static_cast<unsigned>(Tool::kPub);
constexpr unsigned kSub = static_cast<unsigned>(Tool::kSub);
constexpr unsigned kRr = static_cast<unsigned>(Tool::kRr);
constexpr unsigned kAll = kPub | kSub | kRr;

using Values = std::vector<std::string>;

// Whole-string integer parse; false on junk or overflow.
bool parse_long(const std::string& s, long long& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoll(s.c_str(), &end, 10);
  return errno == 0 && end != nullptr && *end == '\0';
}

bool set_message(ClientConfig& c, MessageMode mode, std::string& error) {
  if (c.mode != MessageMode::kNone) {
    error = "Only one type of message can be sent at once.\n";
    return false;
  }
  c.mode = mode;
  return true;
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "Unable to open file \"" + path + "\".";
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

bool set_version(ClientConfig& c, const Values& v, std::string& error) {
  const std::string& s = v[0];
  if (s == "mqttv31" || s == "31") {
    c.version = protocol::Version::kV31;
  } else if (s == "mqttv311" || s == "311") {
    c.version = protocol::Version::kV311;
  } else if (s == "mqttv5" || s == "5") {
    c.version = protocol::Version::kV5;
  } else {
    error = "Invalid protocol version argument given.\n";
    return false;
  }
  return true;
}

bool set_port(ClientConfig& c, const Values& v, std::string& error) {
  long long port = 0;
  if (!parse_long(v[0], port) || port < 1 || port > 65535) {
    error = "Invalid port given: " + v[0];
    return false;
  }
  c.port = static_cast<int>(port);
  return true;
}

bool set_qos_value(const std::string& s, int& out) {
  long long q = 0;
  if (!parse_long(s, q) || q < 0 || q > 2) return false;
  out = static_cast<int>(q);
  return true;
}

bool set_qos(ClientConfig& c, const Values& v, std::string& error) {
  if (!set_qos_value(v[0], c.qos)) {
    error = "Invalid QoS given: " + v[0];
    return false;
  }
  return true;
}

bool set_will_qos(ClientConfig& c, const Values& v, std::string& error) {
  if (!set_qos_value(v[0], c.will_qos)) {
    error = "Invalid will QoS " + v[0] + ".\n";
    return false;
  }
  return true;
}

bool set_keepalive(ClientConfig& c, const Values& v, std::string& error) {
  long long k = 0;
  if (!parse_long(v[0], k) || k < 5 || k > 65535) {
    error = "Invalid keepalive given, it must be between 5 and 65535 inclusive.\n";
    return false;
  }
  c.keepalive = static_cast<int>(k);
  return true;
}

bool set_count(ClientConfig& c, const Values& v, std::string& error) {
  long long n = 0;
  if (!parse_long(v[0], n) || n < 1 || n > 2147483647) {
    error = "Invalid message count \"" + v[0] + "\".\n";
    return false;
  }
  c.msg_count = static_cast<int>(n);
  return true;
}

bool set_timeout(ClientConfig& c, const Values& v, std::string& error) {
  long long n = 0;
  if (!parse_long(v[0], n) || n < 1 || n > 3600) {
    error = "Invalid timeout \"" + v[0] + "\".\n";
    return false;
  }
  c.timeout = static_cast<int>(n);
  return true;
}

bool set_expiry(ClientConfig& c, const Values& v, std::string& error) {
  if (v[0] == "\xE2\x88\x9E") {  // U+221E, "infinity"
    c.session_expiry = UINT32_MAX;
    return true;
  }
  long long n = 0;
  if (!parse_long(v[0], n)) {
    error = "session-expiry-interval not a number.\n";
    return false;
  }
  if (n < -1 || n > UINT32_MAX) {
    error = "session-expiry-interval out of range.\n";
    return false;
  }
  c.session_expiry = n == -1 ? UINT32_MAX : static_cast<uint32_t>(n);
  return true;
}

bool set_inflight(ClientConfig& c, const Values& v, std::string& error) {
  long long n = 0;
  if (!parse_long(v[0], n) || n < 1 || n > 65535) {
    error = "Maximum inflight messages must be greater than 0.\n";
    return false;
  }
  c.max_inflight = static_cast<int>(n);
  return true;
}

bool set_repeat(ClientConfig& c, const Values& v, std::string& error) {
  long long n = 0;
  if (!parse_long(v[0], n) || n < 1 || n > 2147483647) {
    error = "--repeat argument must be >0.\n";
    return false;
  }
  c.repeat = static_cast<int>(n);
  return true;
}

bool set_double(const std::string& s, double& out) {
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return !s.empty() && end != nullptr && *end == '\0';
}

bool set_repeat_delay(ClientConfig& c, const Values& v, std::string& error) {
  if (!set_double(v[0], c.repeat_delay) || c.repeat_delay < 0) {
    error = "--repeat-delay argument must be >=0.0.\n";
    return false;
  }
  return true;
}

bool set_random_filter(ClientConfig& c, const Values& v, std::string& error) {
  if (!set_double(v[0], c.random_filter) || c.random_filter < 0.1 || c.random_filter > 100.0) {
    error = "--random-filter must be between 0.1 and 100.0.\n";
    return false;
  }
  return true;
}

bool set_id(ClientConfig& c, const Values& v, std::string& error) {
  if (v[0].empty() || v[0].size() > 65535) {
    error = "Invalid id.";
    return false;
  }
  c.id = v[0];
  return true;
}

bool set_file(ClientConfig& c, const Values& v, std::string& error) {
  if (!set_message(c, MessageMode::kFile, error)) return false;
  return read_file(v[0], c.message, error);
}

bool refuse(ClientConfig& c, const char* what) {
  if (c.unsupported.empty()) c.unsupported = what;
  return true;
}

bool set_url_value(ClientConfig& c, const Values& v, std::string& error) {
  return apply_url(c, v[0], error);
}

#define ROW(s, l, t, n, msg, body)                                                   \
  OptionSpec {                                                                       \
    s, l, t, n, msg,                                                                 \
        []([[maybe_unused]] ClientConfig & c, [[maybe_unused]] const Values& v,         \
           [[maybe_unused]] std::string& error) -> bool { body }   \
  }

const OptionSpec kOptions[] = {
    ROW("-A", nullptr, kAll, 1, "-A argument given but no address specified.",
        { c.bind_address = v[0]; return true; }),
    ROW("-c", "--disable-clean-session", kAll, 0, "", { c.clean_session = false; return true; }),
    ROW("-C", nullptr, kSub, 1, "-C argument given but no count specified.",
        { return set_count(c, v, error); }),
    ROW("-d", "--debug", kAll, 0, "", { c.debug = true; return true; }),
    ROW("-D", "--property", kAll, 3, "--property argument given but not enough arguments specified.",
        { return apply_property(c, v, error); }),
    ROW("-e", nullptr, kRr, 1, "-e argument given but no response topic specified.",
        { c.response_topic = v[0]; return true; }),
    ROW("-E", nullptr, kSub, 0, "", { c.exit_after_sub = true; return true; }),
    ROW("-f", "--file", kPub | kRr, 1, "-f argument given but no file specified.",
        { return set_file(c, v, error); }),
    ROW("-F", nullptr, kSub | kRr, 1, "-F argument given but no format specified.",
        { c.format = v[0]; return true; }),
    ROW("-h", "--host", kAll, 1, "-h argument given but no host specified.",
        { c.host = v[0]; return true; }),
    ROW("-i", "--id", kAll, 1, "-i argument given but no id specified.",
        { return set_id(c, v, error); }),
    ROW("-I", "--id-prefix", kAll, 1, "-I argument given but no id prefix specified.",
        { c.id_prefix = v[0]; return true; }),
    ROW("-k", "--keepalive", kAll, 1, "-k argument given but no keepalive specified.",
        { return set_keepalive(c, v, error); }),
    ROW("-l", "--stdin-line", kPub, 0, "",
        { return set_message(c, MessageMode::kStdinLines, error); }),
    ROW("-L", "--url", kAll, 1, "-L argument given but no URL specified.",
        { return set_url_value(c, v, error); }),
    ROW("-m", "--message", kPub | kRr, 1, "-m argument given but no message specified.",
        { if (!set_message(c, MessageMode::kMessage, error)) return false;
          c.message = v[0]; return true; }),
    ROW("-M", nullptr, kAll, 1, "-M argument given but max_inflight not specified.",
        { return set_inflight(c, v, error); }),
    ROW("-n", "--null-message", kPub | kRr, 0, "",
        { if (!set_message(c, MessageMode::kNull, error)) return false;
          c.message.clear(); return true; }),
    ROW("-N", nullptr, kSub | kRr, 0, "", { c.eol = false; return true; }),
    ROW("-p", "--port", kAll, 1, "-p argument given but no port specified.",
        { return set_port(c, v, error); }),
    ROW("-P", "--pw", kAll, 1, "-P argument given but no password specified.",
        { c.password = v[0]; return true; }),
    ROW("-q", "--qos", kAll, 1, "-q argument given but no QoS specified.",
        { return set_qos(c, v, error); }),
    ROW("-r", "--retain", kPub, 0, "", { c.retain = true; return true; }),
    ROW("-R", nullptr, kSub | kRr, 0, "",
        { c.no_retain = true; return true; }),
    ROW("-s", "--stdin-file", kPub | kRr, 0, "",
        { return set_message(c, MessageMode::kStdinFile, error); }),
    ROW("-t", "--topic", kAll, 1, "-t argument given but no topic specified.",
        { if (c.tool != Tool::kSub) c.topics.clear();
          c.topics.push_back(v[0]); return true; }),
    ROW("-T", "--filter-out", kSub, 1, "-T argument given but no topic filter specified.",
        { c.filter_outs.push_back(v[0]); return true; }),
    ROW("-u", "--username", kAll, 1, "-u argument given but no username specified.",
        { c.username = v[0]; return true; }),
    ROW("-U", "--unsubscribe", kSub, 1, "-U argument given but no unsubscribe topic specified.",
        { c.unsub_topics.push_back(v[0]); return true; }),
    ROW("-v", "--verbose", kSub | kRr, 0, "", { c.verbose = true; return true; }),
    ROW("-V", "--protocol-version", kAll, 1,
        "--protocol-version argument given but no version specified.",
        { return set_version(c, v, error); }),
    ROW("-W", nullptr, kSub | kRr, 1, "-W argument given but no timeout specified.",
        { return set_timeout(c, v, error); }),
    ROW("-x", nullptr, kAll, 1, "-x argument given but no session expiry interval specified.",
        { return set_expiry(c, v, error); }),
    ROW(nullptr, "--nodelay", kAll, 0, "", { c.nodelay = true; return true; }),
    ROW(nullptr, "--quiet", kAll, 0, "", { c.quiet = true; return true; }),
    ROW(nullptr, "--pretty", kSub | kRr, 0, "", { c.pretty = true; return true; }),
    ROW(nullptr, "--retained-only", kSub, 0, "",
        { c.retained_only = true; return true; }),
    ROW(nullptr, "--remove-retained", kSub, 0, "", { c.remove_retained = true; return true; }),
    ROW(nullptr, "--retain-as-published", kSub, 0, "",
        { c.retain_as_published = true; return true; }),
    ROW(nullptr, "--random-filter", kSub, 1, "--random-filter argument given but no chance specified.",
        { return set_random_filter(c, v, error); }),
    ROW(nullptr, "--repeat", kPub, 1, "--repeat argument given but no count specified.",
        { return set_repeat(c, v, error); }),
    ROW(nullptr, "--repeat-delay", kPub, 1, "--repeat-delay argument given but no time specified.",
        { return set_repeat_delay(c, v, error); }),
    ROW(nullptr, "--unix", kAll, 1, "--unix argument given but no socket path specified.",
        { c.unix_path = v[0]; return true; }),
    ROW(nullptr, "--will-topic", kAll, 1, "--will-topic argument given but no will topic specified.",
        { c.will_topic = v[0]; return true; }),
    ROW(nullptr, "--will-payload", kAll, 1,
        "--will-payload argument given but no will payload specified.",
        { c.will_payload = v[0]; return true; }),
    ROW(nullptr, "--will-qos", kAll, 1, "--will-qos argument given but no will QoS specified.",
        { return set_will_qos(c, v, error); }),
    ROW(nullptr, "--will-retain", kAll, 0, "", { c.will_retain = true; return true; }),
    ROW(nullptr, "--cafile", kAll, 1, "--cafile argument given but no file specified.",
        { c.cafile = v[0]; return true; }),
    ROW(nullptr, "--capath", kAll, 1, "--capath argument given but no directory specified.",
        { c.capath = v[0]; return true; }),
    ROW(nullptr, "--cert", kAll, 1, "--cert argument given but no file specified.",
        { c.certfile = v[0]; return true; }),
    ROW(nullptr, "--key", kAll, 1, "--key argument given but no file specified.",
        { c.keyfile = v[0]; return true; }),
    ROW(nullptr, "--ciphers", kAll, 1, "--ciphers argument given but no ciphers specified.",
        { c.ciphers = v[0]; return true; }),
    ROW(nullptr, "--tls-version", kAll, 1, "--tls-version argument given but no version specified.",
        { c.tls_version = v[0]; return true; }),
    ROW(nullptr, "--tls-alpn", kAll, 1, "--tls-alpn argument given but no protocol specified.",
        { c.tls_alpn = v[0]; return true; }),
    ROW(nullptr, "--tls-use-os-certs", kAll, 0, "", { c.tls_use_os_certs = true; return true; }),
    ROW(nullptr, "--insecure", kAll, 0, "", { c.insecure = true; return true; }),
    ROW(nullptr, "--psk", kAll, 1, "--psk argument given but no key specified.",
        { c.psk = v[0]; return true; }),
    ROW(nullptr, "--psk-identity", kAll, 1, "--psk-identity argument given but no identity specified.",
        { c.psk_identity = v[0]; return true; }),
    // TLS engines and SOCKS: accepted so command lines parse, refused before connecting.
    ROW(nullptr, "--tls-engine", kAll, 1, "--tls-engine argument given but no engine_id specified.",
        { return refuse(c, "TLS (--tls-engine)"); }),
    ROW(nullptr, "--keyform", kAll, 1, "--keyform argument given but no keyform specified.",
        { return refuse(c, "TLS (--keyform)"); }),
    ROW(nullptr, "--tls-engine-kpass-sha1", kAll, 1,
        "--tls-engine-kpass-sha1 argument given but no kpass sha1 specified.",
        { return refuse(c, "TLS (--tls-engine-kpass-sha1)"); }),
    ROW(nullptr, "--proxy", kAll, 1, "--proxy argument given but no proxy url specified.",
        { return refuse(c, "SOCKS5 (--proxy)"); }),
};

#undef ROW

}  // namespace

const OptionSpec* find_option(Tool tool, const std::string& name) {
  for (const OptionSpec& spec : kOptions) {
    if ((spec.tools & static_cast<unsigned>(tool)) == 0) continue;
    if ((spec.short_name != nullptr && name == spec.short_name) ||
        (spec.long_name != nullptr && name == spec.long_name)) {
      return &spec;
    }
  }
  return nullptr;
}

}  // namespace midge::tools
