// TopicTree: matching of topic names against the filters of one worker
// (MQTT 5.0 section 4.7), subscribe/replace/unsubscribe bookkeeping.
#include "broker/topic_tree.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "broker/retained_store.h"
#include "broker/session.h"
#include "broker/shared_state.h"

namespace midge::broker {
namespace {

class TopicTreeTest : public ::testing::Test {
 protected:
  Session* session(const std::string& id) {
    for (auto& s : sessions_) {
      if (s->client_id == id) return s.get();
    }
    sessions_.push_back(std::make_unique<Session>());
    sessions_.back()->client_id = id;
    return sessions_.back().get();
  }

  bool subscribe(const std::string& filter, const std::string& id, uint8_t qos = 0,
                 uint32_t subscription_id = 0) {
    SubscriptionEntry e;
    e.session = session(id);
    e.options.max_qos = qos;
    e.subscription_id = subscription_id;
    return tree_.subscribe(filter, e);
  }

  bool unsubscribe(const std::string& filter, const std::string& id) {
    return tree_.unsubscribe(filter, session(id));
  }

  // Client ids of every entry visited, sorted (one per visit: duplicates stay).
  std::vector<std::string> match(const std::string& topic) {
    std::vector<std::string> ids;
    tree_.match(topic, [&](const SubscriptionEntry& e) { ids.push_back(e.session->client_id); });
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  bool matches(const std::string& filter, const std::string& topic) {
    TopicTree tree;
    SubscriptionEntry e;
    e.session = session("probe");
    tree.subscribe(filter, e);
    size_t visits = 0;
    tree.match(topic, [&](const SubscriptionEntry&) { ++visits; });
    EXPECT_LE(visits, 1u) << filter << " vs " << topic;
    return visits == 1;
  }

  std::vector<std::unique_ptr<Session>> sessions_;
  TopicTree tree_;
};

using Ids = std::vector<std::string>;

struct Case {
  const char* filter;
  const char* topic;
  bool match;
};

// One filter alone in a tree, one topic: matched or not.
TEST_F(TopicTreeTest, MatchTable) {
  const Case cases[] = {
      // exact
      {"a", "a", true},
      {"a/b/c", "a/b/c", true},
      {"a/b", "a/b/c", false},
      {"a/b/c", "a/b", false},
      {"a/b", "a/c", false},
      {"A", "a", false},
      // '+': exactly one level
      {"+", "a", true},
      {"+", "a/b", false},
      {"a/+", "a/b", true},
      {"a/+", "a", false},
      {"a/+", "a/b/c", false},
      {"a/+/c", "a/b/c", true},
      {"a/+/c", "a/b/d", false},
      {"+/+", "a/b", true},
      {"+/b", "a/b", true},
      // '#': the parent level and everything below [MQTT-4.7.1-2]
      {"#", "a", true},
      {"#", "a/b/c", true},
      {"a/#", "a", true},
      {"a/#", "a/b", true},
      {"a/#", "a/b/c", true},
      {"a/#", "b", false},
      {"a/#", "ab", false},
      {"sport/#", "sport", true},
      {"sport/tennis/#", "sport", false},
      {"+/#", "a", true},
      {"+/#", "a/b/c", true},
      {"a/+/#", "a/b", true},
      {"a/+/#", "a", false},
      // '$' topics: no leading wildcard [MQTT-4.7.2-1]
      {"#", "$SYS/broker/uptime", false},
      {"#", "$SYS", false},
      {"+/broker/uptime", "$SYS/broker/uptime", false},
      {"+/#", "$SYS/broker", false},
      {"$SYS/#", "$SYS/broker/uptime", true},
      {"$SYS/#", "$SYS", true},
      {"$SYS/+/uptime", "$SYS/broker/uptime", true},
      {"$SYS/broker/+", "$SYS/broker/uptime", true},
      {"a/#", "a/$b", true},
      {"a/+", "a/$b", true},
      // empty levels are levels
      {"a//b", "a//b", true},
      {"a/b", "a//b", false},
      {"a/+/b", "a//b", true},
      {"+/a", "/a", true},
      {"/a", "/a", true},
      {"a", "/a", false},
      {"#", "/a", true},
      {"/#", "/a", true},
      {"a/+", "a/", true},
      {"a/#", "a/", true},
      {"a/", "a", false},
      {"+/+", "/", true},
      {"+", "/", false},
      // tutorial examples
      {"maison/+/temp", "maison/salon/temp", true},
      {"maison/+/temp", "maison/garage/temp", true},
      {"maison/+/temp", "maison/salon/hum", false},
      {"maison/+/temp", "jardin/temp", false},
      {"maison/#", "maison/rdc/salon/hum", true},
      {"maison/#", "annexe/couloir/hum", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(matches(c.filter, c.topic), c.match) << "filter '" << c.filter << "' topic '" << c.topic
                                                   << "'";
  }
}

TEST_F(TopicTreeTest, ManyFiltersOneTopicVisitsEachMatchingEntryOnce) {
  subscribe("a/b/c", "exact");
  subscribe("a/+/c", "plus");
  subscribe("a/#", "hash");
  subscribe("#", "all");
  subscribe("+/+/+", "three");
  subscribe("a/b", "short");
  subscribe("a/b/c/d", "long");
  subscribe("b/#", "other");
  EXPECT_EQ(match("a/b/c"), (Ids{"all", "exact", "hash", "plus", "three"}));
  EXPECT_EQ(match("a/b"), (Ids{"all", "hash", "short"}));
  EXPECT_EQ(match("a"), (Ids{"all", "hash"}));
  EXPECT_EQ(match("$SYS/b/c"), Ids{});
}

TEST_F(TopicTreeTest, SameSessionOnOverlappingFiltersIsVisitedPerFilter) {
  // De-duplication across filters is the broker's job, not the tree's.
  subscribe("a/+", "s");
  subscribe("a/#", "s");
  subscribe("a/b", "s");
  EXPECT_EQ(match("a/b"), (Ids{"s", "s", "s"}));
  EXPECT_EQ(tree_.size(), 3u);
}

TEST_F(TopicTreeTest, SysOnlyMatchedByDollarFilters) {
  subscribe("#", "all");
  subscribe("+/broker/#", "plus");
  subscribe("$SYS/#", "sys");
  subscribe("$SYS/broker/+", "sysplus");
  EXPECT_EQ(match("$SYS/broker/load"), (Ids{"sys", "sysplus"}));
  EXPECT_EQ(match("x/broker/load"), (Ids{"all", "plus"}));
}

TEST_F(TopicTreeTest, TutorialExamples) {
  subscribe("maison/+/temp", "thermo");
  subscribe("maison/#", "tout");
  EXPECT_EQ(match("maison/salon/temp"), (Ids{"thermo", "tout"}));
  EXPECT_EQ(match("maison/garage/temp"), (Ids{"thermo", "tout"}));
  EXPECT_EQ(match("maison/salon/hum"), Ids{"tout"});
  EXPECT_EQ(match("jardin/temp"), Ids{});
  EXPECT_EQ(match("maison/rdc/salon/hum"), Ids{"tout"});
  EXPECT_EQ(match("annexe/couloir/hum"), Ids{});
}

TEST_F(TopicTreeTest, ReplaceKeepsOneEntryWithNewOptions) {
  EXPECT_TRUE(subscribe("a/+", "s", 0, 1));
  EXPECT_FALSE(subscribe("a/+", "s", 2, 7));  // [MQTT-3.8.4-3]
  EXPECT_EQ(tree_.size(), 1u);
  std::vector<SubscriptionEntry> seen;
  tree_.match("a/x", [&](const SubscriptionEntry& e) { seen.push_back(e); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].options.max_qos, 2);
  EXPECT_EQ(seen[0].subscription_id, 7u);
}

TEST_F(TopicTreeTest, SizeCountsEntries) {
  EXPECT_EQ(tree_.size(), 0u);
  EXPECT_TRUE(subscribe("a", "s1"));
  EXPECT_TRUE(subscribe("a", "s2"));
  EXPECT_TRUE(subscribe("a/b", "s1"));
  EXPECT_TRUE(subscribe("#", "s1"));
  EXPECT_EQ(tree_.size(), 4u);
  EXPECT_TRUE(unsubscribe("a", "s1"));
  EXPECT_EQ(tree_.size(), 3u);
  EXPECT_EQ(match("a"), (Ids{"s1", "s2"}));  // via '#' and "a"
}

TEST_F(TopicTreeTest, UnsubscribeMissingReturnsFalse) {
  EXPECT_FALSE(unsubscribe("a/b", "s"));
  subscribe("a/b", "s");
  EXPECT_FALSE(unsubscribe("a/b", "other"));
  EXPECT_FALSE(unsubscribe("a", "s"));
  EXPECT_FALSE(unsubscribe("a/b/c", "s"));
  EXPECT_FALSE(unsubscribe("a/+", "s"));
  EXPECT_EQ(tree_.size(), 1u);
  EXPECT_TRUE(unsubscribe("a/b", "s"));
  EXPECT_FALSE(unsubscribe("a/b", "s"));
  EXPECT_EQ(tree_.size(), 0u);
}

TEST_F(TopicTreeTest, UnsubscribeOnlyRemovesThatSession) {
  subscribe("a/+", "s1");
  subscribe("a/+", "s2");
  subscribe("a/+", "s3");
  EXPECT_TRUE(unsubscribe("a/+", "s1"));
  EXPECT_EQ(match("a/x"), (Ids{"s2", "s3"}));
}

// Pruning: removed nodes (including the cached '+' and '#' children) must
// not be reached again. Under ASan a dangling cache would be a
// use-after-free here.
TEST_F(TopicTreeTest, UnsubscribePrunesWildcardNodes) {
  subscribe("a/+/c", "s");
  subscribe("a/#", "s");
  subscribe("+", "s");
  subscribe("#", "s");
  EXPECT_TRUE(unsubscribe("a/+/c", "s"));
  EXPECT_TRUE(unsubscribe("a/#", "s"));
  EXPECT_TRUE(unsubscribe("+", "s"));
  EXPECT_TRUE(unsubscribe("#", "s"));
  EXPECT_EQ(tree_.size(), 0u);
  EXPECT_EQ(match("a/b/c"), Ids{});
  EXPECT_EQ(match("a"), Ids{});
  EXPECT_EQ(match("x"), Ids{});
  // The tree is usable again after pruning to the root.
  subscribe("a/+/c", "t");
  subscribe("+", "t");
  EXPECT_EQ(match("a/b/c"), Ids{"t"});
  EXPECT_EQ(match("z"), Ids{"t"});
}

TEST_F(TopicTreeTest, UnsubscribeLeafKeepsSiblingsAndAncestors) {
  subscribe("a", "s1");
  subscribe("a/b", "s2");
  subscribe("a/b/c", "s3");
  subscribe("a/+/c", "s4");
  EXPECT_TRUE(unsubscribe("a/b/c", "s3"));
  EXPECT_EQ(match("a"), Ids{"s1"});
  EXPECT_EQ(match("a/b"), Ids{"s2"});
  EXPECT_EQ(match("a/b/c"), Ids{"s4"});
  EXPECT_TRUE(unsubscribe("a/b", "s2"));
  EXPECT_EQ(match("a/x/c"), Ids{"s4"});
  EXPECT_TRUE(unsubscribe("a", "s1"));
  EXPECT_EQ(match("a/b/c"), Ids{"s4"});
  EXPECT_EQ(tree_.size(), 1u);
}

using Strings = std::vector<std::string>;

// match() remembers which nodes a topic reaches: every change of the tree
// after a match must show in the next match of the same topic.
TEST_F(TopicTreeTest, RepeatedMatchesFollowEveryChange) {
  subscribe("c/a/b", "exact");
  EXPECT_EQ(match("c/a/b"), (Strings{"exact"}));
  subscribe("c/+/b", "plus");  // a new node
  EXPECT_EQ(match("c/a/b"), (Strings{"exact", "plus"}));
  subscribe("c/+/b", "plus2");  // an existing node
  subscribe("c/a/b", "exact2");
  EXPECT_EQ(match("c/a/b"), (Strings{"exact", "exact2", "plus", "plus2"}));
  subscribe("c/a/b/#", "hash");  // '#' also matches its parent level
  subscribe("c/#", "top");
  EXPECT_EQ(match("c/a/b"), (Strings{"exact", "exact2", "hash", "plus", "plus2", "top"}));
  unsubscribe("c/a/b/#", "hash");  // node removed
  unsubscribe("c/+/b", "plus");
  unsubscribe("c/a/b", "exact");
  EXPECT_EQ(match("c/a/b"), (Strings{"exact2", "plus2", "top"}));
  unsubscribe("c/+/b", "plus2");
  unsubscribe("c/a/b", "exact2");
  unsubscribe("c/#", "top");
  EXPECT_EQ(match("c/a/b"), Strings{});
  EXPECT_EQ(tree_.size(), 0u);
  subscribe("c/a/b", "again");
  EXPECT_EQ(match("c/a/b"), (Strings{"again"}));
}

// More topics than the cache has slots, matched twice over: collisions
// replace entries and never mix up two topics.
TEST_F(TopicTreeTest, ManyTopicsShareTheCache) {
  for (int i = 0; i < 3000; i += 3) subscribe("m/" + std::to_string(i), "s" + std::to_string(i));
  subscribe("m/+", "all");
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3000; ++i) {
      const auto got = match("m/" + std::to_string(i));
      if (i % 3 == 0) {
        ASSERT_EQ(got, (Strings{"all", "s" + std::to_string(i)})) << i;
      } else {
        ASSERT_EQ(got, Strings{"all"}) << i;
      }
    }
  }
}

TEST_F(TopicTreeTest, SubscriptionEntryCarriesOptions) {
  SubscriptionEntry e;
  e.session = session("s");
  e.options.max_qos = 1;
  e.options.no_local = true;
  e.options.retain_as_published = true;
  e.subscription_id = 42;
  tree_.subscribe("x/#", e);
  std::vector<SubscriptionEntry> seen;
  tree_.match("x/y", [&](const SubscriptionEntry& v) { seen.push_back(v); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].options, e.options);
  EXPECT_EQ(seen[0].subscription_id, 42u);
}

// Runs `body` on a thread with a 256 KiB stack: a walk that recursed once
// per level would overflow it at 32768 levels (review M9).
template <typename Body>
void on_small_stack(Body body) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  auto run = [](void* arg) -> void* {
    (*static_cast<Body*>(arg))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, run, &body), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

// 32768 levels: the most a 65535-byte topic of '/' can have.
TEST(DeepLevelsTest, TreesDoNotRecursePerLevel) {
  const std::string topic(65535, '/');
  std::string filter;
  for (int i = 0; i < 32767; ++i) filter += "+/";
  filter += "#";
  size_t tree_hits = 0;
  size_t retained_hits = 0;
  size_t shared_hits = 0;
  on_small_stack([&] {
    Session session;
    {
      TopicTree tree;
      tree.subscribe(topic, SubscriptionEntry{&session, {}, 0});
      tree.subscribe(filter, SubscriptionEntry{&session, {}, 1});
      tree.match(topic, [&](const SubscriptionEntry&) { ++tree_hits; });
      EXPECT_TRUE(tree.unsubscribe(topic, &session));
    }  // destroyed with a 32768-level filter still in it
    {
      RetainedStore store;
      MessageFields f;
      f.topic = topic;
      f.payload = "x";
      store.put(Message::create(f));
      store.match(filter, TimePoint{}, [&](const MessagePtr&, const RetainSource*) { return ++retained_hits, true; });
      store.match("#", TimePoint{}, [&](const MessagePtr&, const RetainSource*) { return ++retained_hits, true; });
    }
    {
      SharedSubscriptions shared;
      SharedMember member{0, "m", 0, 0, true, {}};
      shared.add("g", filter, member, 10);
      shared.pick(topic, [&](const SharedMember&) { ++shared_hits; });
    }
  });
  EXPECT_EQ(tree_hits, 2u);
  EXPECT_EQ(retained_hits, 2u);
  EXPECT_EQ(shared_hits, 1u);
}

}  // namespace
}  // namespace midge::broker
