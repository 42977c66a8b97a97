// libFuzzer target for topic names and filters: validation never crashes;
// for a valid filter and topic name (the input split at its first NUL),
// topic_matches agrees with a plain level-by-level reference written here
// from MQTT 5.0 section 4.7, and so does a TopicTree holding that filter.
#include <cstdint>
#include <string_view>
#include <vector>

#include "check.h"
#include "broker/topic_tree.h"
#include "protocol/topic.h"

namespace p = midge::protocol;

namespace {

std::vector<std::string_view> levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

// Section 4.7.1/4.7.2: '+' is one level, '#' the rest (zero levels included),
// and a leading wildcard does not match a topic starting with '$'.
bool reference_match(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  const auto f = levels(filter);
  const auto t = levels(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

void check_tree(std::string_view filter, std::string_view topic, bool matches) {
  midge::broker::TopicTree tree;
  int owner = 0;  // the tree compares session pointers, never follows them
  midge::broker::SubscriptionEntry entry;
  entry.session = reinterpret_cast<midge::broker::Session*>(&owner);
  FUZZ_CHECK(tree.subscribe(filter, entry));
  FUZZ_CHECK(!tree.subscribe(filter, entry));  // a second time replaces [MQTT-3.8.4-3]
  int seen = 0;
  for (int round = 0; round < 2; ++round) {  // the second round is served by the match cache
    tree.match(topic, [&](const midge::broker::SubscriptionEntry& e) {
      FUZZ_CHECK(e.session == entry.session);
      ++seen;
    });
  }
  FUZZ_CHECK(seen == (matches ? 2 : 0));
  FUZZ_CHECK(tree.unsubscribe(filter, entry.session));
  FUZZ_CHECK(tree.size() == 0);
  tree.match(topic, [&](const midge::broker::SubscriptionEntry&) { FUZZ_CHECK(!"no subscription left"); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view filter = input.substr(0, nul);
  const std::string_view topic = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  const bool valid_filter = p::is_valid_topic_filter(filter);
  const bool valid_topic = p::is_valid_topic_name(topic);
  std::string_view group, inner;
  // A valid topic name is a valid filter without wildcards (unless it reads
  // as "$share/...", which as a filter names a shared subscription).
  if (valid_topic && !topic.starts_with("$share/")) {
    FUZZ_CHECK(p::is_valid_topic_filter(topic) && !p::has_wildcard(topic));
  }
  if (!valid_filter) return 0;
  // A shared subscription matches with its inner filter [MQTT-4.8.2].
  const std::string_view plain = p::split_shared_filter(filter, group, inner) ? inner : filter;
  if (plain.data() != filter.data()) FUZZ_CHECK(!group.empty() && !p::has_wildcard(group));
  if (!valid_topic) return 0;
  const bool matches = p::topic_matches(plain, topic);
  FUZZ_CHECK(matches == reference_match(plain, topic));
  check_tree(plain, topic, matches);
  return 0;
}
