// Tests for src/config: the mosquitto.conf dialect as mosquitto 2.0.11 reads it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/config.h"
#include "config/option_table.h"

namespace midge::config {
namespace {

namespace fs = std::filesystem;

Config parse_ok(std::string_view text) {
  auto r = parse_string(text, "test.conf");
  if (auto* e = std::get_if<Error>(&r)) {
    ADD_FAILURE() << "unexpected error: " << e->to_string();
    return {};
  }
  return std::get<Config>(std::move(r));
}

Error parse_err(std::string_view text) {
  auto r = parse_string(text, "test.conf");
  if (std::holds_alternative<Config>(r)) {
    ADD_FAILURE() << "expected an error for: " << text;
    return {};
  }
  return std::get<Error>(r);
}

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("midge_config_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& rel, std::string_view text) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::string path(const std::string& rel = "") const { return (path_ / rel).string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// ---- defaults and basic syntax ---------------------------------------------------------------

TEST(ConfigDefaults, EmptyFileIsLocalOnly) {
  Config c = parse_ok("");
  EXPECT_TRUE(c.listeners.empty());
  EXPECT_TRUE(c.local_only);
  EXPECT_FALSE(c.allow_anonymous.has_value());
  EXPECT_EQ(c.sys_interval, 10u);
  EXPECT_EQ(c.max_queued_messages, 1000u);
  EXPECT_EQ(c.max_inflight_messages, 20u);
  EXPECT_EQ(c.max_keepalive, 65535u);
  EXPECT_EQ(c.persistence_file, "mosquitto.db");  // the store is mosquitto.db.midge (server/persistence.cc)
  EXPECT_FALSE(c.persistence_sync);
  EXPECT_EQ(c.autosave_interval, 1800u);
  EXPECT_EQ(c.auto_id_prefix, "auto-");
  EXPECT_EQ(c.user, "midge");  // started as root, Midge drops to midge (or nobody)
  EXPECT_EQ(c.max_packet_size, 0u);  // Mosquitto's default: the protocol's limit
  EXPECT_EQ(c.max_pending_output, 1048576u);
  EXPECT_EQ(c.max_topic_alias, 10u);
  EXPECT_FALSE(c.persistent_client_expiration.has_value());
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ConfigSyntax, CommentsBlankLinesWhitespaceAndCrlf) {
  Config c = parse_ok("# comment\r\n\r\n   \t\r\n  sys_interval 5  \r\n\tmax_queued_messages\t7\r\n  # indented\n");
  EXPECT_EQ(c.sys_interval, 5u);
  EXPECT_EQ(c.max_queued_messages, 7u);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ConfigSyntax, StringsTakeTheRestOfTheLine) {
  Config c = parse_ok("log_timestamp_format %Y-%m-%d %H:%M:%S\npassword_file /etc/my dir/pw\n");
  EXPECT_EQ(c.log_timestamp_format, "%Y-%m-%d %H:%M:%S");
  EXPECT_EQ(c.password_file, "/etc/my dir/pw");
}

TEST(ConfigSyntax, ExtraArgumentsAreWarnedTrailingCommentIsSilent) {
  Config c = parse_ok("max_queued_messages 10 20\nsys_interval 3 # three seconds\n");
  EXPECT_EQ(c.max_queued_messages, 10u);
  EXPECT_EQ(c.sys_interval, 3u);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "test.conf:1: extra argument '20' for option 'max_queued_messages' ignored");
}

TEST(ConfigValues, AllStoredGlobals) {
  Config c = parse_ok(
      "allow_anonymous true\npassword_file /pw\nsys_interval 0\nmax_queued_messages 0\n"
      "max_queued_bytes 1000000\nqueue_qos0_messages true\nmax_inflight_messages 65535\n"
      "max_inflight_bytes 0\nmessage_size_limit 268435455\nmax_packet_size 20\nmax_keepalive 10\n"
      "persistent_client_expiration 2d\nthread_count 4\nretain_available false\n"
      "allow_zero_length_clientid false\nauto_id_prefix gen-\nset_tcp_nodelay true\npid_file /run/m.pid\n"
      "persistence false\nmax_pending_output 65536\n"
      "log_dest stdout\nlog_dest file /var/log/m.log\nlog_type all\nconnection_messages false\n"
      "log_timestamp false\nlog_timestamp_format %Y\nuser nobody\n");
  EXPECT_EQ(c.allow_anonymous, true);
  EXPECT_EQ(c.password_file, "/pw");
  EXPECT_EQ(c.sys_interval, 0u);
  EXPECT_EQ(c.max_queued_messages, 0u);
  EXPECT_EQ(c.max_queued_bytes, 1000000u);
  EXPECT_TRUE(c.queue_qos0_messages);
  EXPECT_EQ(c.max_inflight_messages, 65535u);
  EXPECT_EQ(c.max_inflight_bytes, 0u);
  EXPECT_EQ(c.message_size_limit, 268435455u);
  EXPECT_EQ(c.max_packet_size, 20u);
  EXPECT_EQ(c.max_keepalive, 10u);
  EXPECT_EQ(c.persistent_client_expiration, 2u * 86400u);
  EXPECT_EQ(c.thread_count, 4u);
  EXPECT_FALSE(c.retain_available);
  EXPECT_FALSE(c.allow_zero_length_clientid);
  EXPECT_EQ(c.auto_id_prefix, "gen-");
  EXPECT_TRUE(c.set_tcp_nodelay);
  EXPECT_EQ(c.pid_file, "/run/m.pid");
  EXPECT_FALSE(c.persistence);
  EXPECT_EQ(c.max_pending_output, 65536u);
  EXPECT_EQ(c.log_dest, (std::vector<std::string>{"stdout", "file /var/log/m.log"}));
  EXPECT_EQ(c.log_type, (std::vector<std::string>{"all"}));
  EXPECT_FALSE(c.connection_messages);
  EXPECT_FALSE(c.log_timestamp);
  EXPECT_EQ(c.log_timestamp_format, "%Y");
  EXPECT_EQ(c.user, "nobody");
  // Values that ask for what Midge does anyway (max_inflight_bytes 0, set_tcp_nodelay true,
  // persistence false, log_type all) are silent.
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
}

TEST(ConfigValues, BooleansAcceptOneAndZeroLikeMosquitto) {
  EXPECT_EQ(parse_ok("allow_anonymous 1").allow_anonymous, true);
  EXPECT_EQ(parse_ok("allow_anonymous 0").allow_anonymous, false);
}

TEST(ConfigValues, Durations) {
  EXPECT_EQ(parse_ok("persistent_client_expiration 1h").persistent_client_expiration, 3600u);
  EXPECT_EQ(parse_ok("persistent_client_expiration 1w").persistent_client_expiration, 604800u);
  EXPECT_EQ(parse_ok("persistent_client_expiration 2m").persistent_client_expiration, 2u * 30 * 86400);
  EXPECT_EQ(parse_ok("persistent_client_expiration 1y").persistent_client_expiration, 365u * 86400);
}

// ---- errors name file:line, option and the problem --------------------------------------------

struct BadCase {
  const char* text;
  int line;
  const char* message;
};

TEST(ConfigErrors, EachKindNamesFileLineAndOption) {
  const BadCase cases[] = {
      {"sys_interval 1\nfoo bar", 2, "unknown option 'foo'"},
      {"allow_anonymous maybe", 1, "option 'allow_anonymous': invalid value 'maybe' (expected true or false)"},
      {"allow_anonymous TRUE", 1, "option 'allow_anonymous': invalid value 'TRUE' (expected true or false)"},
      {"\n\nmax_queued_messages abc", 3, "option 'max_queued_messages': invalid value 'abc' (expected an integer in 0..4294967295)"},
      {"max_keepalive 5", 1, "option 'max_keepalive': value 5 out of range (10..65535)"},
      {"max_keepalive 70000", 1, "option 'max_keepalive': value 70000 out of range (10..65535)"},
      {"sys_interval -1", 1, "option 'sys_interval': value -1 out of range (0..65535)"},
      {"max_packet_size 0", 1, "option 'max_packet_size': value 0 out of range (20..4294967295)"},
      {"message_size_limit 300000000", 1, "option 'message_size_limit': value 300000000 out of range (0..268435455)"},
      {"max_inflight_messages 70000", 1, "option 'max_inflight_messages': value 70000 out of range (0..65535)"},
      {"max_qos 3", 1, "option 'max_qos': value 3 out of range (0..2)"},
      {"max_queued_bytes 99999999999999999999", 1, "option 'max_queued_bytes': value 99999999999999999999 out of range (0..9223372036854775807)"},
      {"pid_file", 1, "option 'pid_file' needs a value"},
      {"allow_anonymous   ", 1, "option 'allow_anonymous' needs a value"},
      {"persistent_client_expiration 14", 1, "option 'persistent_client_expiration': invalid duration '14' (expected a number followed by h, d, w, m or y)"},
      {"persistent_client_expiration 0d", 1, "option 'persistent_client_expiration': invalid duration '0d' (expected a number followed by h, d, w, m or y)"},
      {"listener 1883\nprotocol bogus", 2, "option 'protocol': invalid value 'bogus' (expected one of mqtt, websockets, http)"},
      {"listener 1883\nsocket_domain ipv5", 2, "option 'socket_domain': invalid value 'ipv5' (expected one of ipv4, ipv6)"},
      {"listener 1883\ntls_version tlsv1.0", 2, "option 'tls_version': invalid value 'tlsv1.0' (expected one of tlsv1.3, tlsv1.2, tlsv1.1)"},
      {"log_dest bogus", 1, "option 'log_dest': invalid destination 'bogus' (expected one of stdout, stderr, syslog, topic, file, dlt, none)"},
      {"log_dest file", 1, "option 'log_dest': 'log_dest file' needs a file path"},
      {"log_type bogus", 1, "option 'log_type': invalid value 'bogus' (expected one of debug, error, warning, notice, information, subscribe, unsubscribe, websockets, none, all)"},
      {"listener 70000", 1, "option 'listener': invalid port '70000' (expected 0..65535)"},
      {"listener abc", 1, "option 'listener': invalid port 'abc' (expected 0..65535)"},
      {"listener", 1, "option 'listener' needs a value"},
      {"listener 0", 1, "option 'listener': a listener with port 0 needs a unix socket path"},
      {"port 0", 1, "option 'port': value 0 out of range (1..65535)"},
      {"mount_point foo/", 1, "option 'mount_point': a 'listener' line must come before this option"},
      {"password_file /pw\nper_listener_settings true", 2, "option 'per_listener_settings': per_listener_settings must be set before any other security settings"},
      {"listener 1883\nlistener 1883", 2, "listener on port 1883 (all interfaces) is already declared at test.conf:1"},
      {"port 1883\nlistener 1883", 1, "listener on port 1883 (all interfaces) is already declared at test.conf:2"},
      {"listener 1883 127.0.0.1\nlistener 1883 127.0.0.1", 2, "listener on port 1883 address 127.0.0.1 is already declared at test.conf:1"},
      {"listener 0 /tmp/s\nlistener 0 /tmp/s", 2, "listener on unix socket /tmp/s is already declared at test.conf:1"},
  };
  for (const BadCase& bc : cases) {
    Error e = parse_err(bc.text);
    EXPECT_EQ(e.file, "test.conf") << bc.text;
    EXPECT_EQ(e.line, bc.line) << bc.text;
    EXPECT_EQ(e.message, bc.message) << bc.text;
    EXPECT_EQ(e.to_string(), "test.conf:" + std::to_string(bc.line) + ": " + bc.message);
  }
}

TEST(ConfigErrors, MissingFile) {
  auto r = load_file("/nonexistent/midge.conf");
  ASSERT_TRUE(std::holds_alternative<Error>(r));
  const Error& e = std::get<Error>(r);
  EXPECT_EQ(e.file, "/nonexistent/midge.conf");
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.to_string(), "/nonexistent/midge.conf: unable to open config file: No such file or directory");
}

TEST(ConfigWarnings, NotAppliedMosquittoOptionsAreAcceptedWithAWarning) {
  Config c = parse_ok(
      "connection bridge1\naddress 10.0.0.1:1883\ntopic # both 0\nautosave_interval 60\nplugin_opt_db x\n"
      "auth_opt_foo bar\nretry_interval 20\nmemory_limit 100\n");
  ASSERT_EQ(c.warnings.size(), 8u);
  EXPECT_EQ(c.warnings[0], "test.conf:1: option 'connection' is not applied by Midge yet (bridges are not implemented)");
  EXPECT_EQ(c.warnings[3],
            "test.conf:4: option 'autosave_interval' is not applied by Midge yet (Midge writes every change as it is "
            "made, before acknowledging it: there is no periodic save)");
  EXPECT_EQ(c.warnings[4], "test.conf:5: option 'plugin_opt_db' is not applied by Midge yet (plugins are not implemented)");
  EXPECT_EQ(c.warnings[5], "test.conf:6: option 'auth_opt_foo' is not applied by Midge yet (plugins are not implemented)");
  EXPECT_EQ(c.autosave_interval, 60u);  // stored all the same
}

TEST(ConfigWarnings, LogDestDltIsNotAppliedButTopicIs) {
  Config c = parse_ok("log_dest topic\nlog_dest dlt\nlog_dest stderr\n");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "test.conf:2: option 'log_dest dlt' is not applied by Midge yet (there is no DLT output)");
  EXPECT_EQ(c.log_dest, (std::vector<std::string>{"topic", "dlt", "stderr"}));
}

TEST(ConfigWarnings, ExpirationLongerThan200YearsIsCut) {
  // Expiry times are 64-bit nanoseconds of the steady clock (about 292 years): review L6.
  for (const char* text : {"persistent_client_expiration 1000y", "persistent_client_expiration 99999999999999999999y",
                           "persistent_client_expiration 9223372036854775807h"}) {
    Config c = parse_ok(text);
    EXPECT_EQ(c.persistent_client_expiration, 200ull * 365 * 86400) << text;
    ASSERT_EQ(c.warnings.size(), 1u) << text;
    EXPECT_NE(c.warnings[0].find("longer than Midge's maximum of 200 years"), std::string::npos) << c.warnings[0];
  }
  Config c = parse_ok("persistent_client_expiration 200y");
  EXPECT_EQ(c.persistent_client_expiration, 200ull * 365 * 86400);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(parse_err("persistent_client_expiration 0d").line, 1);
  EXPECT_EQ(parse_err("persistent_client_expiration -1d").line, 1);
}

// ---- refused: ignoring these would weaken security ---------------------------------------------

TEST(ConfigRefused, AclMountPointPluginsEnginesAndUserMappingStopTheStart) {
  const std::pair<const char*, const char*> lines[] = {
      {"plugin /usr/lib/p.so", "plugin"},             {"auth_plugin /usr/lib/p.so", "auth_plugin"},
      {"bind_interface eth0", "bind_interface"},      {"clientid_prefixes sensor-", "clientid_prefixes"},
      {"tls_engine pkcs11", "tls_engine"},            {"tls_keyform engine", "tls_keyform"},
  };
  for (auto [line, name] : lines) {
    for (const char* before : {"listener 1883\n", "listener 9001\nprotocol websockets\n"}) {
      std::string text = std::string(before) + line + "\n";
      Error e = parse_err(text);
      EXPECT_EQ(e.file, "test.conf");
      EXPECT_EQ(e.line, std::string(before) == "listener 1883\n" ? 2 : 3) << text;
      EXPECT_TRUE(e.message.starts_with("option '" + std::string(name) + "' is not supported by Midge yet"))
          << e.message;
    }
  }
  EXPECT_EQ(parse_err("tls_engine pkcs11\n").to_string(),
            "test.conf:1: option 'tls_engine' is not supported by Midge yet and ignoring it would weaken security "
            "(OpenSSL engines are not supported; the key must be a PEM file (keyfile)); remove it to start Midge");
}

// A TLS option that makes no working TLS listener: the listener would serve plaintext.
TEST(ConfigTls, IncompleteTlsListenersStopTheStart) {
  const std::pair<const char*, const char*> cases[] = {
      {"certfile /c", "certfile and keyfile must be given together"},
      {"keyfile /k", "certfile and keyfile must be given together"},
      {"cafile /ca", "TLS options need certfile and keyfile (or psk_hint)"},
      {"capath /ca", "TLS options need certfile and keyfile (or psk_hint)"},
      {"require_certificate true", "TLS options need certfile and keyfile"},
      {"use_identity_as_username true", "TLS options need certfile and keyfile"},
      {"use_subject_as_username 1", "TLS options need certfile and keyfile"},
      {"crlfile /crl", "TLS options need certfile and keyfile"},
      {"ciphers HIGH", "TLS options need certfile and keyfile"},
      {"ciphers_tls1.3 TLS_AES_128_GCM_SHA256", "TLS options need certfile and keyfile"},
      {"dhparamfile /dh", "TLS options need certfile and keyfile"},
      {"tls_version tlsv1.2", "TLS options need certfile and keyfile"},
      {"certfile /c\nkeyfile /k\nrequire_certificate true", "require_certificate needs cafile or capath"},
      {"certfile /c\nkeyfile /k\nuse_identity_as_username true\nuse_subject_as_username true",
       "use_identity_as_username and use_subject_as_username cannot both be true"},
  };
  for (auto [lines, problem] : cases) {
    const std::string text = std::string("listener 1883\n") + lines + "\n";
    Error e = parse_err(text);
    EXPECT_EQ(e.file, "test.conf");
    EXPECT_EQ(e.line, 1) << text;  // the listener's line
    EXPECT_TRUE(e.message.starts_with(std::string("listener 1883: ") + problem)) << text << e.message;
  }
}

TEST(ConfigTls, ListenersTakeTheirTlsOptions) {
  Config c = parse_ok(
      "psk_file /etc/psk\nlistener 8883\ncertfile /c\nkeyfile /k\ncafile /ca\nrequire_certificate true\n"
      "use_identity_as_username true\ncrlfile /crl\ntls_version tlsv1.3\nciphers_tls1.3 TLS_AES_256_GCM_SHA384\n"
      "tls_keyform pem\nlistener 8884\npsk_hint hint\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  const Listener& a = c.listeners[0];
  EXPECT_EQ(a.certfile, "/c");
  EXPECT_EQ(a.keyfile, "/k");
  EXPECT_EQ(a.cafile, "/ca");
  EXPECT_TRUE(a.require_certificate);
  EXPECT_TRUE(a.use_identity_as_username);
  EXPECT_EQ(a.crlfile, "/crl");
  EXPECT_EQ(a.tls_version, "tlsv1.3");
  EXPECT_EQ(a.ciphers_tls13, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(c.listeners[1].psk_hint, "hint");
  EXPECT_EQ(c.psk_file, "/etc/psk");
}

TEST(ConfigRefused, ValuesThatAskForNothingAreAccepted) {
  Config c = parse_ok(
      "listener 1883\nrequire_certificate false\nuse_identity_as_username false\nuse_subject_as_username 0\n"
      "use_username_as_clientid false\nset_tcp_nodelay true\nupgrade_outgoing_qos false\n");
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
}

TEST(ConfigRefused, EveryRefusedOrWarnedRowSaysSoWhenUsed) {
  for (const Option& o : option_table()) {
    if (o.applied == Applied::kYes) continue;
    std::string name(o.name);
    if (name.ends_with('*')) name.back() = 'x';
    std::string value = "1";  // never a row's inert value
    if (o.inert == "true") value = "false";
    else if (o.inert == "false" || o.kind == Kind::kBool) value = "true";
    if (o.kind == Kind::kEnum && !o.choices.empty()) value = std::string(o.choices.substr(0, o.choices.find('|')));
    if (o.kind == Kind::kPath || o.kind == Kind::kString) value = "/x";
    std::string text = "listener 1883\n" + name + " " + value + "\n";
    auto r = parse_string(text, "t.conf");
    if (o.applied == Applied::kRefuse) {
      ASSERT_TRUE(std::holds_alternative<Error>(r)) << text;
      EXPECT_EQ(std::get<Error>(r).line, 2) << text;
      EXPECT_NE(std::get<Error>(r).message.find(std::string(o.why)), std::string::npos) << text;
    } else {
      ASSERT_TRUE(std::holds_alternative<Config>(r)) << text << std::get<Error>(r).to_string();
      const Config& c = std::get<Config>(r);
      ASSERT_EQ(c.warnings.size(), 1u) << text;
      EXPECT_EQ(c.warnings[0], "t.conf:2: option '" + name + "' is not applied by Midge yet (" + std::string(o.why) + ")");
    }
  }
}

TEST(ConfigRefused, SecurityOptionsAreNeverMerelyWarned) {
  for (const char* name : {"tls_engine", "tls_keyform", "tls_engine_kpass_sha1",
                           "plugin", "auth_plugin",
                           "bind_interface", "clientid_prefixes"}) {
    ASSERT_NE(find_option(name), nullptr) << name;
    EXPECT_EQ(find_option(name)->applied, Applied::kRefuse) << name;
  }
  EXPECT_EQ(find_option("user")->applied, Applied::kYes);  // implemented in src/server
  EXPECT_EQ(find_option("acl_file")->applied, Applied::kYes);
  EXPECT_EQ(find_option("mount_point")->applied, Applied::kYes);
  EXPECT_EQ(find_option("persistence")->applied, Applied::kYes);  // src/store
  EXPECT_EQ(find_option("autosave_interval")->applied, Applied::kWarn);
}

// ---- listeners --------------------------------------------------------------------------------

TEST(ConfigListeners, ListenerBlocksTakeTheirOptions) {
  Config c = parse_ok(
      "listener 1883\nmax_connections 10\n"
      "listener 9001 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\nmax_qos 1\n"
      "listener 8883\nmax_topic_alias 5\n"
      "listener 0 /run/midge.sock\n");
  ASSERT_EQ(c.listeners.size(), 4u);
  EXPECT_FALSE(c.local_only);
  const Listener& a = c.listeners[0];
  EXPECT_EQ(a.port, 1883);
  EXPECT_EQ(a.address, "");
  EXPECT_EQ(a.max_connections, 10);
  EXPECT_EQ(a.protocol, "mqtt");
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(a.file, "test.conf");
  const Listener& b = c.listeners[1];
  EXPECT_EQ(b.port, 9001);
  EXPECT_EQ(b.address, "127.0.0.1");
  EXPECT_EQ(b.protocol, "websockets");
  EXPECT_EQ(b.socket_domain, "ipv4");
  EXPECT_EQ(b.max_qos, 1);
  EXPECT_EQ(b.line, 3);
  EXPECT_EQ(c.listeners[2].max_topic_alias, 5);
  EXPECT_EQ(c.listeners[3].port, 0);
  EXPECT_EQ(c.listeners[3].address, "/run/midge.sock");
  // max_qos is each listener's own; of max_topic_alias Midge applies the lowest to every listener,
  // and says so at each listener that asked for more.
  EXPECT_EQ(c.listeners[0].max_qos, 2);
  EXPECT_EQ(c.max_topic_alias, 5);
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_EQ(c.warnings[0], "test.conf:1: option 'max_topic_alias' 10 is not applied: Midge applies the lowest "
                           "max_topic_alias of all listeners, 5, to every listener");
}

TEST(ConfigListeners, UseUsernameAsClientidIsTheListenersOwn) {
  // A listener option in Mosquitto 2.0 (conf.c: cur_listener), with or without per_listener_settings.
  Config c = parse_ok("listener 1883\nuse_username_as_clientid true\nlistener 1884\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_TRUE(c.listeners[0].use_username_as_clientid);
  EXPECT_FALSE(c.listeners[1].use_username_as_clientid);
  EXPECT_TRUE(c.warnings.empty());
  // Before any `listener` line it opens Mosquitto's default listener.
  Config d = parse_ok("use_username_as_clientid true\n");
  ASSERT_EQ(d.listeners.size(), 1u);
  EXPECT_FALSE(d.local_only);
  EXPECT_TRUE(d.listeners[0].use_username_as_clientid);
}

TEST(ConfigListeners, MaxQosIsEachListenersOwn) {
  Config c = parse_ok("listener 1883\nmax_qos 1\nlistener 9001\nprotocol websockets\nmax_qos 0\nlistener 1884\n");
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].max_qos, 1);
  EXPECT_EQ(c.listeners[1].max_qos, 0);
  EXPECT_EQ(c.listeners[2].max_qos, 2);
  EXPECT_TRUE(c.warnings.empty());
  // Mosquitto 2.0 reads maximum_qos as well (conf.c).
  EXPECT_EQ(parse_ok("listener 1883\nmaximum_qos 0\n").listeners[0].max_qos, 0);
}

TEST(ConfigListeners, PortCreatesTheDefaultListenerOnAllInterfaces) {
  Config c = parse_ok("port 1884\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1884);
  EXPECT_EQ(c.listeners[0].address, "");
  EXPECT_FALSE(c.local_only);
}

TEST(ConfigListeners, ListenerOptionBeforeAnyListenerOpensTheDefaultListener) {
  // mosquitto 2.0.11: a config holding only `max_connections 5` listens on 0.0.0.0:1883 and [::]:1883.
  Config c = parse_ok("max_connections 5\nmax_qos 1\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1883);
  EXPECT_EQ(c.listeners[0].max_connections, 5);
  EXPECT_EQ(c.listeners[0].max_qos, 1);
  EXPECT_EQ(c.listeners[0].line, 1);
  EXPECT_EQ(c.max_connections, 5);
  EXPECT_EQ(c.max_qos, 1);
}

TEST(ConfigListeners, SomeListenerOptionsDoNotOpenTheDefaultListener) {
  // Checked against mosquitto 2.0.11: tls_version and http_dir alone keep local-only mode (tls_version
  // is refused by Midge now).
  Config c = parse_ok("http_dir /www\n");
  EXPECT_TRUE(c.local_only);
  EXPECT_TRUE(c.listeners.empty());
}

TEST(ConfigListeners, HttpDirBelongsToItsListener) {
  // As mosquitto 2.0.11: http_dir before any `listener` is the default listener's, not the next one's.
  Config c = parse_ok("http_dir /a\nlistener 9001\nprotocol websockets\nhttp_dir /www\nlistener 9002\nprotocol websockets\n");
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].http_dir, "/www");
  EXPECT_EQ(c.listeners[1].http_dir, "");
}

TEST(ConfigListeners, BindAddressAndPortAlwaysGoToTheDefaultListener) {
  Config c = parse_ok("listener 9001\nbind_address 127.0.0.1\nport 1884\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].port, 9001);
  EXPECT_EQ(c.listeners[0].address, "");
  EXPECT_EQ(c.listeners[1].port, 1884);
  EXPECT_EQ(c.listeners[1].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[1].line, 2);
}

TEST(ConfigListeners, SamePortDifferentAddressesIsFine) {
  Config c = parse_ok("listener 1883 127.0.0.1\nlistener 1883 ::1\n");
  EXPECT_EQ(c.listeners.size(), 2u);
}

TEST(ConfigSecurity, GlobalWhenPerListenerSettingsIsFalse) {
  Config c = parse_ok("listener 1883\nallow_anonymous false\npassword_file /pw\n");
  EXPECT_EQ(c.allow_anonymous, false);
  EXPECT_EQ(c.password_file, "/pw");
  EXPECT_FALSE(c.listeners[0].allow_anonymous.has_value());
  EXPECT_TRUE(c.listeners[0].password_file.empty());
}

TEST(ConfigSecurity, PerListenerWithTheSameSettingsOnEveryListenerBecomesGlobal) {
  Config c = parse_ok(
      "per_listener_settings true\nlistener 1883\nallow_anonymous false\npassword_file /pw\nauto_id_prefix x-\n"
      "allow_zero_length_clientid false\n"
      "listener 9001\nprotocol websockets\nallow_anonymous false\npassword_file /pw\nauto_id_prefix x-\n"
      "allow_zero_length_clientid false\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_TRUE(c.per_listener_settings);
  EXPECT_EQ(c.listeners[1].password_file, "/pw");
  EXPECT_EQ(c.listeners[1].allow_anonymous, false);
  EXPECT_EQ(c.auto_id_prefix, "x-");
  EXPECT_FALSE(c.allow_zero_length_clientid);
}

TEST(ConfigSecurity, PerListenerSettingsMidgeHasOnceThatDifferAreRefused) {
  // Review L11: a setting given for one listener must not apply to another.
  const char* cases[] = {
      "per_listener_settings true\nlistener 1883\nauto_id_prefix a-\nlistener 1884\nauto_id_prefix b-\n",
      "per_listener_settings true\nlistener 1883\nallow_zero_length_clientid false\nlistener 1884\n",
  };
  for (const char* text : cases) {
    Error e = parse_err(text);
    EXPECT_EQ(e.line, 4) << text;
    EXPECT_TRUE(e.message.starts_with("per_listener_settings: this listener's ")) << e.message;
    EXPECT_NE(e.message.find("differs from the listener's at test.conf:2"), std::string::npos) << e.message;
  }
}

TEST(ConfigSecurity, PerListenerPasswordFileAndAllowAnonymousStayWithTheirListener) {
  Config c = parse_ok(
      "per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884\npassword_file /pw\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].allow_anonymous, true);
  EXPECT_TRUE(c.listeners[0].password_file.empty());
  EXPECT_FALSE(c.listeners[1].allow_anonymous.has_value());  // the server takes it as false
  EXPECT_EQ(c.listeners[1].password_file, "/pw");
  EXPECT_FALSE(c.allow_anonymous.has_value());
  EXPECT_TRUE(c.password_file.empty());
}

TEST(ConfigSecurity, PerListenerInLocalOnlyModeFallsBackToGlobal) {
  Config c = parse_ok("per_listener_settings true\nallow_anonymous false\n");
  EXPECT_TRUE(c.local_only);
  EXPECT_EQ(c.allow_anonymous, false);
}

TEST(ConfigSecurity, PerListenerSecurityBeforeAnyListenerIsNamedInAWarning) {
  Config c = parse_ok("per_listener_settings true\nallow_anonymous true\nlistener 1883\n");
  EXPECT_FALSE(c.allow_anonymous.has_value());  // fails closed: anonymous clients are refused
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_TRUE(c.warnings[0].starts_with("test.conf:2: security options before the first 'listener' line apply to no "
                                        "listener"))
      << c.warnings[0];
}

TEST(ConfigSecurity, PerListenerSettingsAfterAListenerIsFine) {
  Config c = parse_ok("listener 1883\nper_listener_settings true\nallow_anonymous true\n");
  EXPECT_EQ(c.listeners[0].allow_anonymous, true);
}

// ---- the tutorial's configs -------------------------------------------------------------------

TEST(ConfigTutorial, RaspberryPiDefaultWithIncludeDir) {
  TempDir dir;
  dir.write("conf.d/README", "not a config\n");
  dir.write("conf.d/local.conf", "listener 1883\nallow_anonymous true\n");
  std::string main = dir.write("mosquitto.conf",
                               "# Place your local configuration in /etc/mosquitto/conf.d/\n"
                               "#\n"
                               "# A full description of the configuration file is at\n"
                               "# /usr/share/doc/mosquitto/examples/mosquitto.conf.example\n"
                               "\n"
                               "pid_file /var/run/mosquitto.pid\n"
                               "\n"
                               "persistence true\n"
                               "persistence_location /var/lib/mosquitto/\n"
                               "\n"
                               "log_dest file /var/log/mosquitto/mosquitto.log\n"
                               "\n"
                               "include_dir " + dir.path("conf.d") + "\n");
  auto r = load_file(main);
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  const Config& c = std::get<Config>(r);
  EXPECT_EQ(c.pid_file, "/var/run/mosquitto.pid");
  EXPECT_TRUE(c.persistence);
  EXPECT_EQ(c.persistence_location, "/var/lib/mosquitto/");
  EXPECT_EQ(c.log_dest, std::vector<std::string>{"file /var/log/mosquitto/mosquitto.log"});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].file, dir.path("conf.d/local.conf"));
  EXPECT_EQ(c.allow_anonymous, true);
}

TEST(ConfigTutorial, MqttAndWebsocketsListeners) {
  Config c = parse_ok("listener 1883\nlistener 9001\nprotocol websockets\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].protocol, "mqtt");
  EXPECT_EQ(c.listeners[1].port, 9001);
  EXPECT_EQ(c.listeners[1].protocol, "websockets");
}

TEST(ConfigTutorial, MetricsListener) {
  Config c = parse_ok("listener 1883\nlistener 9090 127.0.0.1\nprotocol http\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[1].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[1].protocol, "http");
}

TEST(ConfigTutorial, PasswordFileWithoutAnonymous) {
  Config c = parse_ok("listener 1883\npassword_file /etc/mosquitto/passwd\nallow_anonymous false\n");
  EXPECT_EQ(c.password_file, "/etc/mosquitto/passwd");
  EXPECT_EQ(c.allow_anonymous, false);
}

TEST(ConfigTutorial, PortThenWebsocketsListener) {
  Config c = parse_ok("port 1883\nlistener 9001\nprotocol websockets\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].port, 9001);
  EXPECT_EQ(c.listeners[0].protocol, "websockets");
  EXPECT_EQ(c.listeners[1].port, 1883);  // the default listener, opened last like mosquitto
  EXPECT_EQ(c.listeners[1].protocol, "mqtt");
  EXPECT_EQ(c.listeners[1].line, 1);
}

// ---- include_dir ------------------------------------------------------------------------------

TEST(ConfigInclude, MosquittoOrderUpperCaseFirstAndOnlyDotConf) {
  TempDir dir2;
  dir2.write("d/z.conf.bak", "garbage\n");
  dir2.write("d/README", "garbage\n");
  dir2.write("d/sub.conf/x.conf", "garbage\n");  // a directory named *.conf is skipped
  int port = 2000;
  for (const char* name : {"b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf"}) {
    dir2.write(std::string("d/") + name, "listener " + std::to_string(port++) + "\n");
  }
  std::string main2 = dir2.write("main.conf", "include_dir " + dir2.path("d") + "\n");
  auto r2 = load_file(main2);
  ASSERT_TRUE(std::holds_alternative<Config>(r2)) << std::get<Error>(r2).to_string();
  std::vector<std::string> order;
  for (const Listener& l : std::get<Config>(r2).listeners) order.push_back(fs::path(l.file).filename().string());
  EXPECT_EQ(order, (std::vector<std::string>{"00.conf", "01.conf", "A.conf", "a.conf", "B.conf", "b.conf"}));
}

TEST(ConfigInclude, IncludedFilesContinueTheCurrentListener) {
  TempDir dir;
  dir.write("d/1.conf", "protocol websockets\n");
  std::string main = dir.write("main.conf", "listener 9001\ninclude_dir " + dir.path("d") + "\nsys_interval 1\n");
  auto r = load_file(main);
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  EXPECT_EQ(std::get<Config>(r).listeners[0].protocol, "websockets");
  EXPECT_EQ(std::get<Config>(r).sys_interval, 1u);
}

TEST(ConfigInclude, ErrorInsideIncludedFileNamesThatFile) {
  TempDir dir;
  std::string bad = dir.write("d/x.conf", "\n\nmax_qos 7\n");
  std::string main = dir.write("main.conf", "log_type all\ninclude_dir " + dir.path("d") + "\n");
  auto r = load_file(main);
  ASSERT_TRUE(std::holds_alternative<Error>(r));
  const Error& e = std::get<Error>(r);
  EXPECT_EQ(e.file, bad);
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.message, "option 'max_qos': value 7 out of range (0..2) (included from " + main + ":2)");
}

TEST(ConfigInclude, MissingDirectoryIsAnError) {
  // mosquitto 2.0.11: "Error: Unable to open include_dir '/nonexistent'."
  Error e = parse_err("\ninclude_dir /nonexistent/midge.d\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.message, "option 'include_dir': unable to open directory '/nonexistent/midge.d': No such file or directory");
}

TEST(ConfigInclude, NestedIncludesWorkAndLoopsAreDetected) {
  TempDir dir;
  dir.write("d1/a.conf", "include_dir " + dir.path("d2") + "\n");
  dir.write("d2/b.conf", "sys_interval 42\n");
  std::string main = dir.write("main.conf", "include_dir " + dir.path("d1") + "\n");
  auto r = load_file(main);
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<Error>(r).to_string();
  EXPECT_EQ(std::get<Config>(r).sys_interval, 42u);

  std::string looping = dir.write("d2/c.conf", "include_dir " + dir.path("d1") + "\n");
  auto r2 = load_file(main);
  ASSERT_TRUE(std::holds_alternative<Error>(r2));
  EXPECT_EQ(std::get<Error>(r2).file, looping);
  EXPECT_NE(std::get<Error>(r2).message.find("include loop"), std::string::npos);
}

TEST(ConfigInclude, MainFileInsideItsOwnIncludeDirIsALoop) {
  TempDir dir;
  std::string main = dir.write("main.conf", "include_dir " + dir.path() + "\n");
  auto r = load_file(main);
  ASSERT_TRUE(std::holds_alternative<Error>(r));
  EXPECT_NE(std::get<Error>(r).message.find("include loop"), std::string::npos);
}

// ---- -p override ------------------------------------------------------------------------------

TEST(ConfigPortOverride, LocalOnlyModeListensOnLoopbackAtThatPort) {
  Config c = parse_ok("log_type all\n");
  apply_port_override(c, 18830);
  EXPECT_TRUE(c.local_only);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[1].address, "::1");
  EXPECT_EQ(c.listeners[0].port, 18830);
  EXPECT_EQ(c.listeners[1].port, 18830);
}

TEST(ConfigPortOverride, IgnoredWhenAListenerIsConfigured) {
  // mosquitto 2.0.11 `-c conf -p 18833` with `listener 18832` only opens 18832.
  for (const char* text : {"listener 18832\n", "port 18836\n", "max_connections 5\n"}) {
    Config c = parse_ok(text);
    Config before = c;
    apply_port_override(c, 18833);
    ASSERT_EQ(c.listeners.size(), before.listeners.size()) << text;
    EXPECT_EQ(c.listeners[0].port, before.listeners[0].port) << text;
  }
}

// ---- the table --------------------------------------------------------------------------------

TEST(ConfigTable, DescribeListsEveryRowOnce) {
  std::string text = describe_options();
  std::set<std::string_view> names;
  for (const Option& o : option_table()) {
    EXPECT_TRUE(names.insert(o.name).second) << "duplicate row " << o.name;
    EXPECT_NE(text.find("\n" + std::string(o.name) + " "), std::string::npos) << o.name;
    EXPECT_FALSE(o.help.empty()) << o.name;
    EXPECT_EQ(o.set == nullptr, o.kind == Kind::kUnsupported) << o.name;
  }
  EXPECT_NE(text.find("sys_interval"), std::string::npos);
  EXPECT_NE(text.find("10"), std::string::npos);
}

// midge.conf(5)'s option list: one entry per row, under the heading of its scope, and only the
// request lines it writes (a help text starting with '.' or holding '\\' must stay text).
TEST(ConfigTable, ManPageListsEveryRowAsRoff) {
  const std::string text = describe_options_man();
  for (const Option& o : option_table()) {
    std::string name;
    for (char c : o.name) name += c == '-' ? std::string("\\-") : std::string(1, c);
    EXPECT_NE(text.find("\n.BI \"" + name + " \" "), std::string::npos) << o.name;
  }
  std::istringstream lines(text);
  int entries = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(".TP", 0) == 0) ++entries;
    if (line.empty() || (line[0] != '.' && line[0] != '\'')) continue;
    EXPECT_TRUE(line == ".TP" || line == ".br" || line.rfind(".SS \"", 0) == 0 || line.rfind(".BI \"", 0) == 0)
        << line;
  }
  EXPECT_EQ(entries, static_cast<int>(option_table().size()));
  EXPECT_EQ(text.find("Default: \\fB\"\"\\fR"), std::string::npos);  // an empty default reads "none"
}

TEST(ConfigTable, EveryManPageOptionIsKnown) {
  // The option names of mosquitto.conf(5) for 2.0.11.
  const char* names[] = {
      "acl_file", "address", "allow_anonymous", "allow_duplicate_messages", "allow_zero_length_clientid",
      "auth_opt_x", "auth_plugin", "auth_plugin_deny_special_chars", "auto_id_prefix", "autosave_interval",
      "autosave_on_changes", "bind_address", "bind_interface", "bridge_alpn", "bridge_attempt_unsubscribe",
      "bridge_bind_address", "bridge_cafile", "bridge_capath", "bridge_certfile", "bridge_identity",
      "bridge_insecure", "bridge_keyfile", "bridge_max_packet_size", "bridge_outgoing_retain",
      "bridge_protocol_version", "bridge_psk", "bridge_require_ocsp", "bridge_tls_version", "cafile", "capath",
      "certfile", "check_retain_source", "ciphers", "ciphers_tls1.3", "cleansession", "clientid_prefixes",
      "connection", "connection_messages", "crlfile", "dhparamfile", "http_dir", "idle_timeout", "include_dir",
      "keepalive_interval", "keyfile", "listener", "local_cleansession", "local_clientid", "local_password",
      "local_username", "log_dest", "log_facility", "log_timestamp", "log_timestamp_format", "log_type",
      "max_connections", "max_inflight_bytes", "max_inflight_messages", "max_keepalive", "max_packet_size",
      "max_qos", "max_queued_bytes", "max_queued_messages", "max_topic_alias", "memory_limit",
      "message_size_limit", "mount_point", "notification_topic", "notifications", "notifications_local_only",
      "password_file", "per_listener_settings", "persistence", "persistence_file", "persistence_location",
      "persistent_client_expiration", "pid_file", "port", "protocol", "psk_file", "psk_hint",
      "queue_qos0_messages", "remote_clientid", "remote_password", "remote_username", "require_certificate",
      "restart_timeout", "retain_available", "round_robin", "set_tcp_nodelay", "socket_domain", "start_type",
      "sys_interval", "threshold", "tls_engine", "tls_engine_kpass_sha1", "tls_keyform", "tls_version", "topic",
      "try_private", "upgrade_outgoing_qos", "use_identity_as_username", "use_subject_as_username",
      "use_username_as_clientid", "user", "websockets_headers_size", "websockets_log_level",
  };
  for (const char* n : names) EXPECT_NE(find_option(n), nullptr) << n;
  EXPECT_EQ(find_option("auth_opt_"), nullptr);
  EXPECT_EQ(find_option("thread_count")->flags & kMidgeExtension, kMidgeExtension);
}

TEST(ConfigTable, EveryStoredRowAcceptsASampleValue) {
  // Drives each row through the parser so a kind/field mismatch cannot hide.
  for (const Option& o : option_table()) {
    if (o.kind == Kind::kUnsupported || o.name == "include_dir" || o.applied == Applied::kRefuse) continue;
    std::string value;
    switch (o.kind) {
      case Kind::kBool: value = "true"; break;
      case Kind::kUint:
      case Kind::kInt: value = std::to_string(o.max); break;
      case Kind::kDuration: value = "1d"; break;
      case Kind::kEnum: value = std::string(o.choices.substr(0, o.choices.find('|'))); break;
      case Kind::kListener: value = "1999"; break;
      case Kind::kSpecial: value = "stderr"; break;
      default: value = "/some/value"; break;
    }
    // A TLS listener, so that TLS rows make a complete one (config/parser.cc, check_tls).
    std::string text = "listener 1998\ncertfile /c\nkeyfile /k\ncafile /ca\n" + std::string(o.name) + " " + value + "\n";
    auto r = parse_string(text, "sample.conf");
    EXPECT_TRUE(std::holds_alternative<Config>(r)) << o.name << ": " << std::get<Error>(r).to_string();
  }
}

}  // namespace
}  // namespace midge::config
