// Tests of cluster/owner_routes.h: the owner's per-node routes.
#include "cluster/owner_routes.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(OwnerRoutesTest, MatchesExactAndWildcardRoutesOncePerNode) {
  OwnerRoutes r;
  r.Add("n1", 10, "a/b");
  r.Add("n1", 10, "a/+");  // the same node through two filters: listed once
  r.Add("n2", 20, "a/#");
  r.Add("n3", 30, "x/y");
  EXPECT_THAT(r.Match("a/b"), ElementsAre("n1", "n2"));
  EXPECT_THAT(r.Match("a/c"), ElementsAre("n1", "n2"));
  EXPECT_THAT(r.Match("a/b/c"), ElementsAre("n2"));
  EXPECT_THAT(r.Match("x/y"), ElementsAre("n3"));
  EXPECT_THAT(r.Match("q"), IsEmpty());
  EXPECT_EQ(r.route_count(), 4u);
}

TEST(OwnerRoutesTest, DollarTopicsAreNotMatchedByRootWildcards) {
  OwnerRoutes r;
  r.Add("n1", 1, "#");
  r.Add("n2", 2, "$SYS/#");
  EXPECT_THAT(r.Match("$SYS/broker/uptime"), ElementsAre("n2"));
  EXPECT_THAT(r.Match("plain"), ElementsAre("n1"));
}

TEST(OwnerRoutesTest, RemoveAndDuplicateAdds) {
  OwnerRoutes r;
  r.Add("n1", 1, "t");
  r.Add("n1", 1, "t");  // a node registers a filter once; a repeat changes nothing
  r.Remove("n1", 1, "t");
  EXPECT_THAT(r.Match("t"), IsEmpty());
  EXPECT_EQ(r.route_count(), 0u);
  r.Remove("n1", 1, "t");        // unknown: ignored
  r.Remove("nobody", 1, "t");
  EXPECT_EQ(r.route_count(), 0u);
}

TEST(OwnerRoutesTest, ANewIncarnationReplacesTheOldRoutes) {
  OwnerRoutes r;
  r.Add("n1", 100, "old/a");
  r.Add("n1", 100, "old/b");
  r.Add("n1", 200, "new/a");  // n1 restarted: lease 200
  EXPECT_THAT(r.Match("old/a"), IsEmpty());
  EXPECT_THAT(r.Match("new/a"), ElementsAre("n1"));
  // A late removal from the old incarnation does not touch the new one's routes.
  r.Remove("n1", 100, "new/a");
  EXPECT_THAT(r.Match("new/a"), ElementsAre("n1"));
}

TEST(OwnerRoutesTest, DropNodeRemovesEverythingOfThatNode) {
  OwnerRoutes r;
  r.Add("n1", 1, "a");
  r.Add("n1", 1, "b/#");
  r.Add("n2", 2, "a");
  r.DropNode("n1");
  EXPECT_THAT(r.Match("a"), ElementsAre("n2"));
  EXPECT_THAT(r.Match("b/c"), IsEmpty());
  EXPECT_THAT(r.nodes(), ElementsAre("n2"));
}

TEST(OwnerRoutesTest, SharedRoutesAreListedPerSubscriptionWithTheirNodes) {
  OwnerRoutes r;
  r.Add("n1", 1, "s/+", "g");
  r.Add("n2", 2, "s/+", "g");
  r.Add("n2", 2, "s/#", "g");   // another shared subscription of the same group
  r.Add("n3", 3, "s/+", "h");   // another group
  r.Add("n3", 3, "s/+");        // and a plain route of the same filter
  const OwnerRoutes::Matches m = r.MatchAll("s/x");
  EXPECT_THAT(m.plain, ElementsAre("n3"));
  ASSERT_EQ(m.shared.size(), 3u);
  EXPECT_THAT(m.shared.at({"g", "s/+"}), ElementsAre("n1", "n2"));
  EXPECT_THAT(m.shared.at({"g", "s/#"}), ElementsAre("n2"));
  EXPECT_THAT(m.shared.at({"h", "s/+"}), ElementsAre("n3"));
  r.Remove("n2", 2, "s/+", "g");
  EXPECT_THAT(r.MatchAll("s/x").shared.at({"g", "s/+"}), ElementsAre("n1"));
  r.DropNode("n1");
  EXPECT_EQ(r.MatchAll("s/x").shared.count({"g", "s/+"}), 0u);
}

}  // namespace
}  // namespace shardmq::cluster
