// --help text of midge_pub, midge_sub and midge_rr (stdout, exit code 1 like
// the Mosquitto tools).
#include <cstdio>

#include "tools/options_table.h"

namespace midge::tools {
namespace {

const char kCommon[] =
    "Connection:\n"
    "  -h HOST            broker host (default localhost)\n"
    "  -p PORT            broker port (default 1883, 8883 with --cafile, --capath or --psk)\n"
    "  --unix PATH        connect through a unix domain socket\n"
    "  -L URL             mqtt(s)://[user[:password]@]host[:port]/topic, or for MQTT over\n"
    "                     WebSockets ws(s)://[user[:password]@]host[:port][/path]\n"
    "                     (default port 80 / 443, default path /mqtt; topic from -t)\n"
    "  -A ADDRESS         bind the local end of the connection to ADDRESS\n"
    "  --nodelay          disable Nagle's algorithm\n"
    "  -V VERSION         5, 311 or 31 (also mqttv5, mqttv311, mqttv31)\n"
    "  -i ID              client id; -I PREFIX: PREFIX followed by the process id\n"
    "  -k SECONDS         keep alive, 5..65535 (default 60)\n"
    "  -c                 persistent session (needs -i); -x SECONDS: v5 session expiry\n"
    "  -u USER, -P PASS   credentials\n"
    "  -D CMD NAME VALUE  v5 property for connect, publish, subscribe, unsubscribe,\n"
    "                     disconnect or will (user-property takes NAME and VALUE)\n"
    "  --will-topic T, --will-payload P, --will-qos Q, --will-retain\n"
    "  -d                 print every packet; --quiet: print no error messages\n"
    "TLS (on with --cafile, --capath, --tls-use-os-certs, mqtts:// or wss://):\n"
    "  --cafile FILE      trusted CA certificates (PEM); --capath DIR: a hashed CA dir\n"
    "  --tls-use-os-certs trust the system's CA certificates\n"
    "  --cert FILE, --key FILE   client certificate and its private key (PEM)\n"
    "  --insecure         do not check that the certificate names the host\n"
    "  --tls-version V    oldest TLS version allowed: tlsv1.3, tlsv1.2 or tlsv1.1\n"
    "  --ciphers LIST     OpenSSL cipher list (TLS 1.2 and older)\n"
    "  --tls-alpn PROTO   ALPN protocol to offer\n"
    "TLS-PSK (instead of --cafile/--capath; --tls-version and --ciphers apply):\n"
    "  --psk HEXKEY       pre-shared key, in hexadecimal (no leading 0x)\n"
    "  --psk-identity ID  the identity the broker knows the key by\n"
    "Not supported yet (exit 1): --tls-engine, --keyform, --tls-engine-kpass-sha1, --proxy\n"
    "  --help             this text\n";

const char kPublishing[] =
    "Message:\n"
    "  -t TOPIC           topic to publish to\n"
    "  -m TEXT            the payload; -f FILE: a file's contents; -n: empty payload\n"
    "  -s                 read the payload from stdin\n"
    "  -q QOS             0, 1 or 2 (default 0)\n";

const char kPubOnly[] =
    "  -l                 send each line of stdin as a message\n"
    "  -r                 retain the message\n"
    "  -M COUNT           maximum QoS 1/2 messages in flight (default 20)\n"
    "  --repeat N, --repeat-delay SECONDS   publish the message N times\n";

const char kReceiving[] =
    "Output:\n"
    "  -v                 print 'topic payload'\n"
    "  -F FORMAT          format: %t topic, %p payload, %q qos, %r retain, %l length,\n"
    "                     %m message id, %x/%X hex payload, %j/%J JSON, %I/%U time,\n"
    "                     %A %C %D %E %F %P %R %S v5 properties, @X strftime, \\n \\e ...\n"
    "  -N                 no newline after each message; --pretty: indented JSON\n"
    "  -R                 ignore retained messages\n"
    "  -W SECONDS         exit with code 27 after SECONDS\n";

const char kSubOnly[] =
    "  -t FILTER          topic filter to subscribe to (repeatable); -q QOS: its QoS\n"
    "  -C COUNT           exit after COUNT messages\n"
    "  -E                 exit once the subscriptions are acknowledged\n"
    "  -T FILTER          do not print messages matching FILTER (repeatable)\n"
    "  -U FILTER          unsubscribe from FILTER (repeatable)\n"
    "  --retained-only    print retained messages, exit at the first live one\n"
    "  --remove-retained  clear each retained message received\n"
    "  --retain-as-published   v5 subscription option\n"
    "  --random-filter PERCENT print only this share of messages\n";

}  // namespace

void print_usage(Tool tool) {
  const char* name = tool_name(tool);
  switch (tool) {
    case Tool::kPub:
      std::printf("%s publishes one message (or several) to an MQTT broker and exits.\n\n"
                  "Usage: %s [-h host] [-p port] -t topic {-m text | -f file | -s | -l | -n}"
                  " [options]\n\n%s%s\n%s",
                  name, name, kPublishing, kPubOnly, kCommon);
      break;
    case Tool::kSub:
      std::printf("%s subscribes to topics on an MQTT broker and prints the messages it "
                  "receives.\n\nUsage: %s [-h host] [-p port] -t filter [-t filter ...]"
                  " [options]\n\n%s%s\n%s",
                  name, name, kReceiving, kSubOnly, kCommon);
      break;
    case Tool::kRr:
      std::printf("%s publishes a request and prints the response received on the response "
                  "topic (MQTT v5 request/response by default).\n\n"
                  "Usage: %s [-h host] [-p port] -t topic -e response-topic"
                  " {-m text | -f file | -s | -n} [options]\n\n%s"
                  "  -e TOPIC           response topic to subscribe to\n\n%s\n%s",
                  name, name, kPublishing, kReceiving, kCommon);
      break;
  }
}

}  // namespace midge::tools
