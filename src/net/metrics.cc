#include "net/metrics.h"

#include <dirent.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "net/listener.h"
#include "net/prometheus.h"
#include "net/worker.h"
#include "protocol/reason_code.h"

namespace midge::net {
namespace {

using Type = PrometheusText::Type;
using Workers = std::vector<std::unique_ptr<Worker>>;
using broker::Stats;

template <class T>
T total(const Workers& ws, const std::atomic<T> Stats::*member) {
  T n = 0;
  for (const auto& w : ws) n += (w->stats().*member).load(std::memory_order_relaxed);
  return n;
}

struct Counter {
  const char* name;
  const char* help;
  const std::atomic<uint64_t> Stats::*member;
};
constexpr Counter kCounters[] = {
    {"midge_packets_received_total", "MQTT packets received ($SYS/broker/messages/received).", &Stats::messages_received},
    {"midge_packets_sent_total", "MQTT packets sent ($SYS/broker/messages/sent).", &Stats::messages_sent},
    {"midge_received_bytes_total", "Bytes read from every socket ($SYS/broker/bytes/received).", &Stats::bytes_received},
    {"midge_sent_bytes_total", "Bytes written to every socket ($SYS/broker/bytes/sent).", &Stats::bytes_sent},
    {"midge_publish_received_bytes_total", "Payload bytes of the PUBLISH packets received ($SYS/broker/publish/bytes/received).",
     &Stats::publish_bytes_received},
    {"midge_publish_sent_bytes_total", "Payload bytes of the PUBLISH packets sent ($SYS/broker/publish/bytes/sent).",
     &Stats::publish_bytes_sent},
    {"midge_connections_total", "CONNECTs accepted.", &Stats::connections_total},
    {"midge_sockets_accepted_total", "Sockets accepted on every listener.", &Stats::sockets_total},
    {"midge_clients_expired_total", "Persistent sessions ended by their expiry ($SYS/broker/clients/expired).",
     &Stats::clients_expired},
    {"midge_publish_denied_total", "PUBLISH packets refused by the acl_file.", &Stats::publish_denied},
    {"midge_subscribe_denied_total", "Subscription filters refused by the acl_file.", &Stats::subscribe_denied},
    {"midge_publish_expired_total", "Messages not delivered because their Message Expiry Interval had passed.",
     &Stats::publish_expired},
};

struct Gauge {
  const char* name;
  const char* help;
  const std::atomic<int64_t> Stats::*member;
};
constexpr Gauge kGauges[] = {
    {"midge_clients_connected", "Clients connected ($SYS/broker/clients/connected).", &Stats::clients_connected},
    {"midge_clients_disconnected", "Persistent sessions without a connection ($SYS/broker/clients/disconnected).",
     &Stats::clients_disconnected},
    {"midge_subscriptions", "Subscriptions, $share ones included ($SYS/broker/subscriptions/count).", &Stats::subscriptions},
    {"midge_shared_subscriptions", "$share subscriptions ($SYS/broker/shared_subscriptions/count).",
     &Stats::shared_subscriptions},
    {"midge_queued_messages", "Messages waiting in session queues (offline sessions, or a full in-flight window).",
     &Stats::queued_messages},
    {"midge_inflight_messages", "QoS 1 and 2 messages sent and not yet acknowledged.", &Stats::inflight_messages},
};

void sys_counters(PrometheusText& t, const Workers& ws) {
  for (const Counter& c : kCounters) {
    t.family(c.name, Type::kCounter, c.help);
    t.sample(c.name, {}, total(ws, c.member));
  }
  for (const Gauge& g : kGauges) {
    t.family(g.name, Type::kGauge, g.help);
    t.sample(g.name, {}, total(ws, g.member));
  }
}

void broker_gauges(PrometheusText& t, const Workers& ws) {
  const broker::SharedState& shared = ws.front()->shared();
  t.family("midge_build_info", Type::kGauge, "The broker's version, as a label.");
  std::string_view version = shared.settings.version;  // "midge version X.Y.Z"
  if (const size_t space = version.rfind(' '); space != std::string_view::npos) version.remove_prefix(space + 1);
  t.sample("midge_build_info", {{"version", version}}, int64_t{1});
  t.family("midge_uptime_seconds", Type::kGauge, "Seconds since the broker started ($SYS/broker/uptime).");
  t.sample("midge_uptime_seconds", {}, std::chrono::duration<double>(Clock::now() - shared.start_time).count());
  t.family("midge_clients_maximum", Type::kGauge, "Most clients connected at once ($SYS/broker/clients/maximum).");
  t.sample("midge_clients_maximum", {}, shared.clients_maximum.load(std::memory_order_relaxed));
  const auto retained = static_cast<int64_t>(shared.retained.count());
  const auto retained_bytes = static_cast<int64_t>(shared.retained.bytes());
  t.family("midge_retained_messages", Type::kGauge, "Retained messages ($SYS/broker/retained messages/count).");
  t.sample("midge_retained_messages", {}, retained);
  t.family("midge_retained_bytes", Type::kGauge, "Payload bytes of the retained messages.");
  t.sample("midge_retained_bytes", {}, retained_bytes);
  t.family("midge_stored_messages", Type::kGauge,
           "Messages held: retained, queued and in flight ($SYS/broker/store/messages/count).");
  t.sample("midge_stored_messages", {}, total(ws, &Stats::stored_messages) + retained);
  t.family("midge_stored_bytes", Type::kGauge, "Payload bytes of those messages ($SYS/broker/store/messages/bytes).");
  t.sample("midge_stored_bytes", {}, total(ws, &Stats::stored_bytes) + retained_bytes);
}

void drops(PrometheusText& t, const Workers& ws) {
  t.family("midge_publish_dropped_total", Type::kCounter,
           "Messages not delivered, by reason; their sum is $SYS/broker/publish/messages/dropped.");
  for (int r = 0; r < static_cast<int>(broker::DropReason::kCount); ++r) {
    uint64_t n = 0;
    for (const auto& w : ws) n += w->stats().dropped[r].load(std::memory_order_relaxed);
    t.sample("midge_publish_dropped_total", {{"reason", broker::drop_reason_name(static_cast<broker::DropReason>(r))}}, n);
  }
  t.family("midge_disconnects_total", Type::kCounter,
           "Connections the broker ended, by MQTT 5 reason ($SYS/broker/disconnects/...); reasons seen so far.");
  for (unsigned code = 0; code < 256; ++code) {
    uint64_t n = 0;
    for (const auto& w : ws) n += w->stats().disconnects[code].load(std::memory_order_relaxed);
    if (n == 0) continue;
    const std::string reason =
        PrometheusText::snake_case(protocol::reason_code_name(static_cast<protocol::ReasonCode>(code)));
    t.sample("midge_disconnects_total", {{"reason", reason}}, n);
  }
}

// Listeners with the same label (local-only mode's 127.0.0.1 and ::1, one
// port on two addresses) are one series.
struct LabelSlots {
  std::string label;
  std::vector<const Listener*> listeners;
};
std::vector<LabelSlots> by_label(const Workers& ws) {
  std::vector<LabelSlots> out;
  for (const Listener* l : ws.front()->listeners()) {
    const std::string label = l->label();
    auto it = std::find_if(out.begin(), out.end(), [&](const LabelSlots& s) { return s.label == label; });
    if (it == out.end()) it = out.insert(out.end(), LabelSlots{label, {}});
    it->listeners.push_back(l);
  }
  return out;
}

uint64_t traffic(const Workers& ws, const LabelSlots& s, const std::atomic<uint64_t> broker::Traffic::*member) {
  uint64_t n = 0;
  for (const auto& w : ws) {
    for (const Listener* l : s.listeners) n += (w->stats().of(l->traffic_slot()).*member).load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t publish(const Workers& ws, const LabelSlots* s, bool sent, int qos) {
  uint64_t n = 0;
  for (const auto& w : ws) {
    const Stats& st = w->stats();
    for (size_t slot = 0; slot < st.traffic_slots(); ++slot) {
      if (s && std::none_of(s->listeners.begin(), s->listeners.end(),
                            [&](const Listener* l) { return l->traffic_slot() == slot; })) {
        continue;
      }
      const broker::Traffic& t = st.of(static_cast<uint16_t>(slot));
      n += (sent ? t.publish_sent[qos] : t.publish_received[qos]).load(std::memory_order_relaxed);
    }
  }
  return n;
}

constexpr std::string_view kQos[3] = {"0", "1", "2"};

void publish_by_qos(PrometheusText& t, const Workers& ws) {
  t.family("midge_publish_received_total", Type::kCounter,
           "PUBLISH packets received, by QoS ($SYS/broker/publish/messages/received).");
  for (int q = 0; q < 3; ++q) t.sample("midge_publish_received_total", {{"qos", kQos[q]}}, publish(ws, nullptr, false, q));
  t.family("midge_publish_sent_total", Type::kCounter, "PUBLISH packets sent, by QoS ($SYS/broker/publish/messages/sent).");
  for (int q = 0; q < 3; ++q) t.sample("midge_publish_sent_total", {{"qos", kQos[q]}}, publish(ws, nullptr, true, q));
}

void listeners(PrometheusText& t, const Workers& ws) {
  const std::vector<LabelSlots> all = by_label(ws);
  t.family("midge_listener_connections", Type::kGauge, "Connections open on the listener (its max_connections count).");
  for (const LabelSlots& s : all) {
    int64_t open = 0;
    for (const Listener* l : s.listeners) open += l->open_connections.load(std::memory_order_relaxed);
    t.sample("midge_listener_connections", {{"listener", s.label}}, open);
  }
  struct Family {
    const char* name;
    const char* help;
    const std::atomic<uint64_t> broker::Traffic::*member;
  };
  static constexpr Family kFamilies[] = {
      {"midge_listener_connections_total", "Sockets accepted on the listener.", &broker::Traffic::sockets},
      {"midge_listener_received_bytes_total", "Bytes read from the listener's sockets.", &broker::Traffic::bytes_received},
      {"midge_listener_sent_bytes_total", "Bytes written to the listener's sockets.", &broker::Traffic::bytes_sent},
  };
  for (const Family& f : kFamilies) {
    t.family(f.name, Type::kCounter, f.help);
    for (const LabelSlots& s : all) t.sample(f.name, {{"listener", s.label}}, traffic(ws, s, f.member));
  }
  for (const bool sent : {false, true}) {
    const char* name = sent ? "midge_listener_publish_sent_total" : "midge_listener_publish_received_total";
    t.family(name, Type::kCounter, sent ? "PUBLISH packets sent to the listener's clients, by QoS."
                                        : "PUBLISH packets received from the listener's clients, by QoS.");
    for (const LabelSlots& s : all) {
      for (int q = 0; q < 3; ++q) t.sample(name, {{"listener", s.label}, {"qos", kQos[q]}}, publish(ws, &s, sent, q));
    }
  }
}

std::vector<double> bounds_seconds() {
  std::vector<double> out;
  for (uint64_t ns : util::Histogram::kBoundsNs) out.push_back(static_cast<double>(ns) / 1e9);
  return out;
}

void histogram(PrometheusText& t, const char* name, const std::string& worker, const util::Histogram& h) {
  static const std::vector<double> kBounds = bounds_seconds();
  const util::Histogram::Snapshot s = h.snapshot();
  t.histogram(name, {{"worker", worker}}, kBounds, s.counts, static_cast<double>(s.sum_ns) / 1e9);
}

void workers(PrometheusText& t, const Workers& ws) {
  t.family("midge_worker_loop_turn_seconds", Type::kHistogram,
           "Time each event-loop turn took, from epoll_wait's return to the end of its work.");
  for (const auto& w : ws) histogram(t, "midge_worker_loop_turn_seconds", std::to_string(w->index()), w->loop().turn_times());
  t.family("midge_worker_mailbox_messages", Type::kGauge, "Messages other workers posted to this one, not yet handled.");
  for (const auto& w : ws) {
    t.sample("midge_worker_mailbox_messages", {{"worker", std::to_string(w->index())}}, static_cast<uint64_t>(w->inbox_pending()));
  }
  if (!ws.front()->has_store()) return;
  t.family("midge_store_commit_seconds", Type::kHistogram,
           "Time of each commit of a worker's journal to the store (persistence true), fsync included with persistence_sync.");
  for (const auto& w : ws) histogram(t, "midge_store_commit_seconds", std::to_string(w->index()), w->commit_times());
  t.family("midge_store_commit_failures_total", Type::kCounter, "Commits to the store that failed.");
  for (const auto& w : ws) t.sample("midge_store_commit_failures_total", {{"worker", std::to_string(w->index())}}, w->commit_failures());
}

// /proc/self/stat fields: CPU time (14, 15, in clock ticks) and resident pages (24).
void process(PrometheusText& t, double uptime) {
  double cpu = 0, rss = 0;
  if (FILE* f = std::fopen("/proc/self/stat", "r")) {
    char buf[1024];
    const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // After the command name, which may hold spaces: ") S ppid ..." (field 3 on).
    if (const char* p = std::strrchr(buf, ')')) {
      unsigned long utime = 0, stime = 0;
      long pages = 0;
      if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
                      &utime, &stime, &pages) == 3) {
        cpu = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
        rss = static_cast<double>(pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
      }
    }
  }
  int64_t fds = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) fds += e->d_name[0] != '.';
    ::closedir(d);
    --fds;  // the directory's own descriptor
  }
  const struct mallinfo2 heap = ::mallinfo2();
  t.family("process_cpu_seconds_total", Type::kCounter, "User and system CPU time spent, in seconds.");
  t.sample("process_cpu_seconds_total", {}, cpu);
  t.family("process_resident_memory_bytes", Type::kGauge, "Resident memory size in bytes.");
  t.sample("process_resident_memory_bytes", {}, rss);
  t.family("process_open_fds", Type::kGauge, "Open file descriptors.");
  t.sample("process_open_fds", {}, fds);
  t.family("process_start_time_seconds", Type::kGauge, "Start time of the process since the Unix epoch, in seconds.");
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  t.sample("process_start_time_seconds", {}, std::floor(now - uptime));
  t.family("midge_heap_bytes", Type::kGauge, "Heap bytes in use (malloc's allocated bytes, mallinfo2).");
  t.sample("midge_heap_bytes", {}, static_cast<uint64_t>(heap.uordblks + heap.hblkhd));
}

}  // namespace

std::string metrics_text(const Workers& ws) {
  PrometheusText t;
  if (ws.empty()) return t.take();
  sys_counters(t, ws);
  broker_gauges(t, ws);
  publish_by_qos(t, ws);
  drops(t, ws);
  listeners(t, ws);
  workers(t, ws);
  process(t, std::chrono::duration<double>(Clock::now() - ws.front()->shared().start_time).count());
  return t.take();
}

}  // namespace midge::net
