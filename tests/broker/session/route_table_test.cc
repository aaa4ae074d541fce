// Tests of broker/session/route_table.h: route add/remove with generation fencing, session
// locations with version ordering, and Match() (per-session merging, QoS downgrade, No Local,
// Retain As Published, shared-subscription round-robin, '$' topics).
#include "broker/session/route_table.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "broker/session/message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::broker::session {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

RouteEntry Route(const std::string& client_id, const std::string& filter, uint8_t qos,
                 uint64_t gen = 1) {
  RouteEntry e;
  e.client_id = client_id;
  e.session_gen = gen;
  e.filter = filter;
  e.qos = qos;
  return e;
}

RouteEntry SharedRoute(const std::string& client_id, const std::string& group,
                       const std::string& filter, uint8_t qos, uint64_t gen = 1) {
  RouteEntry e = Route(client_id, filter, qos, gen);
  e.group = group;
  return e;
}

MessagePtr Msg(const std::string& topic, uint8_t qos, bool retain = false,
               const std::string& publisher = "publisher") {
  auto m = std::make_shared<Message>();
  m->topic = topic;
  m->payload = "payload";
  m->qos = qos;
  m->retain = retain;
  m->publisher = publisher;
  return m;
}

SessionLocation Loc(uint64_t gen, uint64_t version, bool online, int worker = 0) {
  SessionLocation loc;
  loc.worker = worker;
  loc.online = online;
  loc.gen = gen;
  loc.version = version;
  return loc;
}

std::vector<uint32_t> Ids(const Delivery& d) {
  return std::vector<uint32_t>(d.subscription_ids.begin(), d.subscription_ids.end());
}

class RouteTableTest : public ::testing::Test {
 protected:
  std::vector<Delivery> Match(const MessagePtr& message) {
    std::vector<Delivery> out;
    table_.Match(message, &out);
    return out;
  }
  std::vector<Delivery> Match(const std::string& topic, uint8_t qos = 1) {
    return Match(Msg(topic, qos));
  }
  // Client ids of the deliveries, in order.
  std::vector<std::string> Clients(const std::vector<Delivery>& deliveries) {
    std::vector<std::string> out;
    for (const Delivery& d : deliveries) out.push_back(d.client_id);
    return out;
  }
  std::vector<std::string> MatchClients(const std::string& topic) { return Clients(Match(topic)); }
  void Online(const std::string& client_id, uint64_t gen = 1) {
    table_.SetLocation(client_id, Loc(gen, 1, /*online=*/true));
  }
  void Offline(const std::string& client_id, uint64_t gen = 1) {
    table_.SetLocation(client_id, Loc(gen, 1, /*online=*/false));
  }

  RouteTable table_;
};

// ---------------------------------------------------------------------------------------------
// Add / Remove

TEST_F(RouteTableTest, EmptyTableMatchesNothing) {
  EXPECT_THAT(Match("a"), IsEmpty());
  EXPECT_EQ(table_.route_count(), 0u);
  EXPECT_EQ(table_.session_count(), 0u);
}

TEST_F(RouteTableTest, AddThenMatchDelivers) {
  table_.Add(Route("c1", "a/b", 1, /*gen=*/7));
  EXPECT_EQ(table_.route_count(), 1u);
  const MessagePtr m = Msg("a/b", 1);
  std::vector<Delivery> out = Match(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].client_id, "c1");
  EXPECT_EQ(out[0].session_gen, 7u);
  EXPECT_EQ(out[0].message, m);  // shared, not copied
  EXPECT_EQ(out[0].qos, 1);
  EXPECT_FALSE(out[0].retain);
  EXPECT_FALSE(out[0].forwarded);
  EXPECT_THAT(Ids(out[0]), IsEmpty());
  EXPECT_THAT(Match("a/c"), IsEmpty());
  EXPECT_THAT(Match("a"), IsEmpty());
}

TEST_F(RouteTableTest, MatchAppendsToOut) {
  table_.Add(Route("c1", "t", 0));
  std::vector<Delivery> out(1);
  out[0].client_id = "already-there";
  table_.Match(Msg("t", 0), &out);
  EXPECT_THAT(Clients(out), ElementsAre("already-there", "c1"));
}

TEST_F(RouteTableTest, AddSameSessionAndFilterReplaces) {
  table_.Add(Route("c1", "a/b", 0));
  table_.Add(Route("c1", "a/b", 2));
  EXPECT_EQ(table_.route_count(), 1u);
  std::vector<Delivery> out = Match("a/b", 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].qos, 2);
}

TEST_F(RouteTableTest, Remove) {
  table_.Add(Route("c1", "a/b", 1));
  table_.Add(Route("c1", "a/+", 1));
  table_.Add(Route("c2", "a/b", 1));
  EXPECT_EQ(table_.route_count(), 3u);

  table_.Remove("c1", "", "a/b", 1);
  EXPECT_EQ(table_.route_count(), 2u);
  EXPECT_THAT(MatchClients("a/b"), UnorderedElementsAre("c1", "c2"));  // c1 still via a/+
  table_.Remove("c1", "", "a/+", 1);
  EXPECT_THAT(MatchClients("a/b"), ElementsAre("c2"));

  // Removing what is not there changes nothing.
  table_.Remove("c1", "", "a/b", 1);
  table_.Remove("c2", "", "x/y", 1);
  table_.Remove("c2", "g", "a/b", 1);  // c2 holds a/b only as a non-shared route
  table_.Remove("nobody", "", "a/b", 1);
  EXPECT_EQ(table_.route_count(), 1u);
  EXPECT_THAT(MatchClients("a/b"), ElementsAre("c2"));
}

TEST_F(RouteTableTest, SharedAndNonSharedRoutesOfOneSessionAreSeparate) {
  Online("c1");
  table_.Add(Route("c1", "t", 1));
  table_.Add(SharedRoute("c1", "g", "t", 1));
  table_.Add(SharedRoute("c1", "h", "t", 1));
  EXPECT_EQ(table_.route_count(), 3u);
  // One delivery for the plain subscription and one per group (MQTT 5 s4.8.2).
  EXPECT_THAT(MatchClients("t"), ElementsAre("c1", "c1", "c1"));

  table_.Remove("c1", "g", "t", 1);
  EXPECT_EQ(table_.route_count(), 2u);
  table_.Remove("c1", "", "t", 1);
  EXPECT_EQ(table_.route_count(), 1u);
  EXPECT_THAT(MatchClients("t"), ElementsAre("c1"));
}

TEST_F(RouteTableTest, OlderGenerationAddDoesNotOverrideNewer) {
  table_.Add(Route("c1", "t", 2, /*gen=*/5));
  table_.Add(Route("c1", "t", 0, /*gen=*/4));  // a late change from the previous instance
  EXPECT_EQ(table_.route_count(), 1u);
  std::vector<Delivery> out = Match("t", 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session_gen, 5u);
  EXPECT_EQ(out[0].qos, 2);
}

TEST_F(RouteTableTest, NewerGenerationAddReplacesOlder) {
  table_.Add(Route("c1", "t", 0, /*gen=*/4));
  table_.Add(Route("c1", "t", 2, /*gen=*/5));
  std::vector<Delivery> out = Match("t", 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session_gen, 5u);
  EXPECT_EQ(out[0].qos, 2);
}

TEST_F(RouteTableTest, OlderGenerationRemoveDoesNotRemoveNewer) {
  table_.Add(Route("c1", "t", 1, /*gen=*/5));
  table_.Remove("c1", "", "t", /*gen=*/4);
  EXPECT_EQ(table_.route_count(), 1u);
  EXPECT_THAT(MatchClients("t"), ElementsAre("c1"));

  table_.Remove("c1", "", "t", /*gen=*/5);  // same generation removes
  EXPECT_EQ(table_.route_count(), 0u);

  table_.Add(Route("c1", "t", 1, /*gen=*/5));
  table_.Remove("c1", "", "t", /*gen=*/6);  // a newer generation removes too
  EXPECT_EQ(table_.route_count(), 0u);
}

TEST_F(RouteTableTest, GenerationFencingAppliesToSharedRoutes) {
  Online("c1", 5);
  table_.Add(SharedRoute("c1", "g", "t", 2, /*gen=*/5));
  table_.Add(SharedRoute("c1", "g", "t", 0, /*gen=*/4));
  table_.Remove("c1", "g", "t", /*gen=*/4);
  std::vector<Delivery> out = Match("t", 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session_gen, 5u);
  EXPECT_EQ(out[0].qos, 2);
}

// ---------------------------------------------------------------------------------------------
// Locations

TEST_F(RouteTableTest, LocationUnknownIsNull) {
  EXPECT_EQ(table_.Location("nobody"), nullptr);
}

TEST_F(RouteTableTest, SetLocationAppliesOnlyNewerChanges) {
  table_.SetLocation("c1", Loc(/*gen=*/2, /*version=*/3, /*online=*/true, /*worker=*/1));
  ASSERT_NE(table_.Location("c1"), nullptr);
  EXPECT_EQ(table_.session_count(), 1u);
  EXPECT_EQ(table_.Location("c1")->worker, 1);
  EXPECT_TRUE(table_.Location("c1")->online);

  // Same generation, older or equal version: ignored.
  table_.SetLocation("c1", Loc(2, 2, false, 9));
  table_.SetLocation("c1", Loc(2, 3, false, 9));
  EXPECT_EQ(table_.Location("c1")->worker, 1);
  EXPECT_TRUE(table_.Location("c1")->online);
  EXPECT_EQ(table_.Location("c1")->version, 3u);

  // Same generation, newer version: applied.
  table_.SetLocation("c1", Loc(2, 4, false, 0));
  EXPECT_EQ(table_.Location("c1")->worker, 0);
  EXPECT_FALSE(table_.Location("c1")->online);
  EXPECT_EQ(table_.Location("c1")->version, 4u);

  // Older generation, whatever its version: ignored.
  table_.SetLocation("c1", Loc(1, 100, true, 5));
  EXPECT_EQ(table_.Location("c1")->gen, 2u);
  EXPECT_EQ(table_.Location("c1")->worker, 0);

  // Newer generation, even with a lower version (versions count per generation): applied.
  table_.SetLocation("c1", Loc(3, 0, true, 7));
  EXPECT_EQ(table_.Location("c1")->gen, 3u);
  EXPECT_EQ(table_.Location("c1")->version, 0u);
  EXPECT_EQ(table_.Location("c1")->worker, 7);
  EXPECT_TRUE(table_.Location("c1")->online);
  EXPECT_EQ(table_.session_count(), 1u);
}

TEST_F(RouteTableTest, RemoveLocationByGeneration) {
  table_.SetLocation("c1", Loc(5, 1, true));
  table_.SetLocation("c2", Loc(1, 1, true));

  table_.RemoveLocation("c1", 4);  // older generation: the newer instance stays
  ASSERT_NE(table_.Location("c1"), nullptr);
  EXPECT_EQ(table_.Location("c1")->gen, 5u);

  table_.RemoveLocation("c1", 5);
  EXPECT_EQ(table_.Location("c1"), nullptr);
  EXPECT_EQ(table_.session_count(), 1u);

  table_.RemoveLocation("c2", 9);  // newer generation removes too
  EXPECT_EQ(table_.Location("c2"), nullptr);
  table_.RemoveLocation("nobody", 1);
  EXPECT_EQ(table_.session_count(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Location slots: what Match hands the publisher's worker instead of a look-up by client id

TEST_F(RouteTableTest, MatchGivesEachDeliveryTheSlotOfItsClient) {
  table_.Add(Route("c1", "a/+", 1));
  table_.Add(Route("c1", "a/b", 1));  // merged with the one above: one delivery, one slot
  table_.Add(Route("c2", "a/b", 1));
  table_.Add(SharedRoute("c3", "g", "a/b", 1));
  Online("c1");
  Online("c3");
  std::vector<Delivery> out;
  std::vector<LocationSlot*> slots;
  table_.Match(Msg("a/b", 1), &out, &slots);
  ASSERT_EQ(out.size(), 3u);
  ASSERT_EQ(slots.size(), 3u);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(slots[i], table_.Slot(out[i].client_id.view())) << out[i].client_id;
  }
  // A client with routes but no location yet: a slot, without a location in it.
  const size_t c2 = Clients(out)[0] == "c2" ? 0 : Clients(out)[1] == "c2" ? 1 : 2;
  EXPECT_EQ(RouteTable::LocationIn(slots[c2]), nullptr);
  const size_t c1 = Clients(out)[0] == "c1" ? 0 : 1;
  ASSERT_NE(RouteTable::LocationIn(slots[c1]), nullptr);
  EXPECT_TRUE(RouteTable::LocationIn(slots[c1])->online);
}

TEST_F(RouteTableTest, SlotKeepsItsAddressWhileTheTableGrows) {
  table_.Add(Route("c0", "t", 1));
  Online("c0");
  LocationSlot* first = table_.Slot("c0");
  ASSERT_NE(first, nullptr);
  // Enough other clients to make the slot map rehash several times.
  for (int i = 1; i < 2000; ++i) {
    table_.Add(Route("c" + std::to_string(i), "t", 1));
    Online("c" + std::to_string(i));
  }
  EXPECT_EQ(table_.Slot("c0"), first);
  EXPECT_EQ(RouteTable::LocationIn(first), table_.Location("c0"));
  EXPECT_EQ(table_.session_count(), 2000u);
}

TEST_F(RouteTableTest, SlotLivesWhileARouteALocationOrASessionHoldsIt) {
  table_.Add(Route("c1", "a", 1));
  table_.Add(Route("c1", "b", 1));
  EXPECT_EQ(table_.slot_count(), 1u);
  EXPECT_EQ(table_.session_count(), 0u);  // routes alone are not a known location
  table_.Remove("c1", "", "a", 1);
  EXPECT_NE(table_.Slot("c1"), nullptr);  // the route under "b" still names it
  table_.Remove("c1", "", "b", 1);
  EXPECT_EQ(table_.Slot("c1"), nullptr);
  EXPECT_EQ(table_.slot_count(), 0u);

  // A location alone holds a slot, and so does an attached session.
  table_.SetLocation("c2", Loc(1, 1, true));
  auto* session = reinterpret_cast<Session*>(uintptr_t{0x1000});  // never dereferenced
  table_.AttachSession("c2", session);
  table_.RemoveLocation("c2", 1);
  ASSERT_NE(table_.Slot("c2"), nullptr);
  EXPECT_EQ(table_.Slot("c2")->local, session);
  EXPECT_EQ(table_.Location("c2"), nullptr);
  table_.DetachSession("c2");
  EXPECT_EQ(table_.Slot("c2"), nullptr);
  EXPECT_EQ(table_.slot_count(), 0u);
}

TEST_F(RouteTableTest, EndedSlotStaysReadableUntilCollectGarbage) {
  // A publish holds slot pointers from Match while its deliveries run; a delivery can end a
  // session (and so the slot). The ended slot must read as "no location, no session" until the
  // publish is done, not be freed under it.
  table_.Add(Route("c1", "a", 1, /*gen=*/3));
  table_.SetLocation("c1", Loc(3, 1, true));
  auto* session = reinterpret_cast<Session*>(uintptr_t{0x1000});  // never dereferenced
  table_.AttachSession("c1", session);
  std::vector<Delivery> out;
  std::vector<LocationSlot*> slots;
  table_.Match(Msg("a", 1), &out, &slots);
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0]->local, session);

  table_.Remove("c1", "", "a", 3);
  table_.RemoveLocation("c1", 3);
  table_.DetachSession("c1");
  EXPECT_EQ(table_.Slot("c1"), nullptr);
  // Still readable (AddressSanitizer builds would flag a freed slot here).
  EXPECT_EQ(slots[0]->local, nullptr);
  EXPECT_EQ(RouteTable::LocationIn(slots[0]), nullptr);
  table_.CollectGarbage();

  // A new slot for the same id is a different one; the old one is gone from the table.
  table_.Add(Route("c1", "a", 1, /*gen=*/4));
  EXPECT_NE(table_.Slot("c1"), nullptr);
  EXPECT_EQ(table_.Slot("c1")->local, nullptr);
}

TEST_F(RouteTableTest, ReplacedRouteKeepsItsSlotReference) {
  table_.Add(Route("c1", "a", 0, /*gen=*/1));
  table_.Add(Route("c1", "a", 2, /*gen=*/2));  // replaces: still one reference
  table_.Remove("c1", "", "a", 2);
  EXPECT_EQ(table_.Slot("c1"), nullptr);
  EXPECT_EQ(table_.route_count(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Match: non-shared subscriptions

TEST_F(RouteTableTest, OneDeliveryPerSessionWithMaxQosAndAllSubscriptionIds) {
  RouteEntry plus = Route("c1", "a/+", 1);
  plus.subscription_id = 11;
  RouteEntry exact = Route("c1", "a/b", 2);
  exact.subscription_id = 22;
  RouteEntry all = Route("c1", "#", 0);  // no subscription id
  RouteEntry other = Route("c1", "x", 2);
  other.subscription_id = 33;
  table_.Add(plus);
  table_.Add(exact);
  table_.Add(all);
  table_.Add(other);
  RouteEntry c2 = Route("c2", "a/#", 1);
  c2.subscription_id = 44;
  table_.Add(c2);

  std::vector<Delivery> out = Match("a/b", 2);
  ASSERT_EQ(out.size(), 2u);
  std::map<std::string, const Delivery*> by_client;
  for (const Delivery& d : out) by_client[d.client_id] = &d;
  ASSERT_EQ(by_client.count("c1"), 1u);
  ASSERT_EQ(by_client.count("c2"), 1u);
  EXPECT_EQ(by_client["c1"]->qos, 2);
  EXPECT_THAT(Ids(*by_client["c1"]), UnorderedElementsAre(11, 22));
  EXPECT_EQ(by_client["c2"]->qos, 1);
  EXPECT_THAT(Ids(*by_client["c2"]), ElementsAre(44));

  // The maximum is over the downgraded QoS: a QoS 1 message stays QoS 1.
  out = Match("a/b", 1);
  ASSERT_EQ(out.size(), 2u);
  for (const Delivery& d : out) EXPECT_EQ(d.qos, 1) << d.client_id;

  // Only the matching subscriptions count.
  out = Match("a/c", 2);
  ASSERT_EQ(out.size(), 2u);
  for (const Delivery& d : out) {
    if (d.client_id == "c1") {
      EXPECT_EQ(d.qos, 1);
      EXPECT_THAT(Ids(d), ElementsAre(11));
    }
  }
}

TEST_F(RouteTableTest, QosIsMinOfMessageAndSubscription) {
  for (uint8_t sub_qos = 0; sub_qos <= 2; ++sub_qos) {
    for (uint8_t msg_qos = 0; msg_qos <= 2; ++msg_qos) {
      RouteTable table;
      table.Add(Route("c1", "t", sub_qos));
      std::vector<Delivery> out;
      table.Match(Msg("t", msg_qos), &out);
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].qos, std::min(sub_qos, msg_qos))
          << "sub qos " << int{sub_qos} << ", message qos " << int{msg_qos};
    }
  }
}

TEST_F(RouteTableTest, NoLocalSkipsPublishersOwnSession) {
  RouteEntry own = Route("c1", "t", 1);
  own.no_local = true;
  table_.Add(own);
  table_.Add(Route("c2", "t", 1));

  EXPECT_THAT(Clients(Match(Msg("t", 1, false, /*publisher=*/"c1"))), ElementsAre("c2"));
  EXPECT_THAT(Clients(Match(Msg("t", 1, false, /*publisher=*/"c2"))),
              UnorderedElementsAre("c1", "c2"));
  EXPECT_THAT(Clients(Match(Msg("t", 1, false, /*publisher=*/""))),  // broker-originated
              UnorderedElementsAre("c1", "c2"));
}

TEST_F(RouteTableTest, NoLocalIsPerSubscription) {
  RouteEntry no_local = Route("c1", "a/+", 2);
  no_local.no_local = true;
  no_local.subscription_id = 1;
  RouteEntry plain = Route("c1", "a/b", 1);
  plain.subscription_id = 2;
  table_.Add(no_local);
  table_.Add(plain);

  std::vector<Delivery> out = Match(Msg("a/b", 2, false, /*publisher=*/"c1"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].qos, 1);  // only the subscription without No Local counts
  EXPECT_THAT(Ids(out[0]), ElementsAre(2));
}

TEST_F(RouteTableTest, RetainAsPublished) {
  RouteEntry rap = Route("keeps", "t", 1);
  rap.retain_as_published = true;
  table_.Add(rap);
  table_.Add(Route("clears", "t", 1));

  std::vector<Delivery> out = Match(Msg("t", 1, /*retain=*/true));
  ASSERT_EQ(out.size(), 2u);
  for (const Delivery& d : out) {
    EXPECT_EQ(d.retain, d.client_id == "keeps") << d.client_id;
  }
  // A message published without RETAIN is never delivered with it.
  out = Match(Msg("t", 1, /*retain=*/false));
  ASSERT_EQ(out.size(), 2u);
  for (const Delivery& d : out) EXPECT_FALSE(d.retain) << d.client_id;
}

TEST_F(RouteTableTest, RetainAsPublishedOnAnyOverlappingSubscriptionKeepsRetain) {
  RouteEntry rap = Route("c1", "a/#", 1);
  rap.retain_as_published = true;
  table_.Add(Route("c1", "a/b", 1));
  table_.Add(rap);
  std::vector<Delivery> out = Match(Msg("a/b", 1, /*retain=*/true));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].retain);
}

TEST_F(RouteTableTest, NonSharedDeliveryDoesNotNeedALocation) {
  table_.Add(Route("offline", "t", 1));
  Offline("offline");
  table_.Add(Route("unknown", "t", 1));
  EXPECT_THAT(MatchClients("t"), UnorderedElementsAre("offline", "unknown"));
}

TEST_F(RouteTableTest, DollarTopicsNeedExplicitFirstLevel) {
  table_.Add(Route("all", "#", 1));
  table_.Add(Route("plus", "+/broker/uptime", 1));
  table_.Add(Route("sys", "$SYS/#", 1));
  table_.Add(Route("exact", "$SYS/broker/uptime", 1));
  table_.Add(Route("sysplus", "$SYS/+/uptime", 1));
  Online("member");
  table_.Add(SharedRoute("member", "g", "#", 1));

  // MQTT s4.7.2: '#' and '+' at the first level do not match '$' topics, shared or not.
  EXPECT_THAT(MatchClients("$SYS/broker/uptime"), UnorderedElementsAre("sys", "exact", "sysplus"));
  EXPECT_THAT(MatchClients("x/broker/uptime"), UnorderedElementsAre("all", "plus", "member"));
}

// ---------------------------------------------------------------------------------------------
// Match: shared subscriptions

TEST_F(RouteTableTest, SharedGroupRoundRobinAmongOnlineMembers) {
  for (const char* c : {"c1", "c2", "c3"}) {
    Online(c);
    table_.Add(SharedRoute(c, "g", "jobs/#", 1));
  }
  std::map<std::string, int> counts;
  std::string previous;
  for (int i = 0; i < 9; ++i) {
    std::vector<Delivery> out = Match("jobs/" + std::to_string(i));
    ASSERT_EQ(out.size(), 1u) << "message " << i;  // exactly one delivery per group
    EXPECT_NE(out[0].client_id, previous) << "message " << i;
    previous = out[0].client_id;
    ++counts[out[0].client_id];
  }
  EXPECT_EQ(counts, (std::map<std::string, int>{{"c1", 3}, {"c2", 3}, {"c3", 3}}));
}

TEST_F(RouteTableTest, SharedDeliveryUsesChosenMembersOptions) {
  RouteEntry e = SharedRoute("c1", "g", "t", 1, /*gen=*/9);
  e.subscription_id = 5;
  e.retain_as_published = true;
  Online("c1", 9);
  table_.Add(e);
  const MessagePtr m = Msg("t", 2, /*retain=*/true);
  std::vector<Delivery> out = Match(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].client_id, "c1");
  EXPECT_EQ(out[0].session_gen, 9u);
  EXPECT_EQ(out[0].message, m);
  EXPECT_EQ(out[0].qos, 1);  // min(2, 1)
  EXPECT_TRUE(out[0].retain);
  EXPECT_THAT(Ids(out[0]), ElementsAre(5));
}

TEST_F(RouteTableTest, SharedGroupSkipsOfflineMembersWhileAnyIsOnline) {
  for (const char* c : {"c1", "c2", "c3", "c4"}) table_.Add(SharedRoute(c, "g", "t", 1));
  Online("c1");
  Offline("c2");
  Online("c3");
  // c4 has no location at all: treated as offline.

  std::map<std::string, int> counts;
  for (int i = 0; i < 6; ++i) {
    std::vector<Delivery> out = Match("t");
    ASSERT_EQ(out.size(), 1u);
    ++counts[out[0].client_id];
  }
  EXPECT_EQ(counts["c2"], 0);
  EXPECT_EQ(counts["c4"], 0);
  EXPECT_EQ(counts["c1"], 3);
  EXPECT_EQ(counts["c3"], 3);

  // c1 goes offline (newer version), c2 comes online: only c2 and c3 receive now.
  table_.SetLocation("c1", Loc(1, 2, /*online=*/false));
  table_.SetLocation("c2", Loc(1, 2, /*online=*/true));
  counts.clear();
  for (int i = 0; i < 6; ++i) {
    std::vector<Delivery> out = Match("t");
    ASSERT_EQ(out.size(), 1u);
    ++counts[out[0].client_id];
  }
  EXPECT_EQ(counts["c1"], 0);
  EXPECT_EQ(counts["c4"], 0);
  EXPECT_EQ(counts["c2"], 3);
  EXPECT_EQ(counts["c3"], 3);
}

TEST_F(RouteTableTest, SharedGroupWithAllMembersOfflineStillDeliversOnce) {
  table_.Add(SharedRoute("c1", "g", "t", 1));
  table_.Add(SharedRoute("c2", "g", "t", 1));
  Offline("c1");
  // c2 has no location.
  std::map<std::string, int> counts;
  for (int i = 0; i < 4; ++i) {
    std::vector<Delivery> out = Match("t");
    ASSERT_EQ(out.size(), 1u) << "message " << i;
    ++counts[out[0].client_id];
  }
  EXPECT_EQ(counts["c1"] + counts["c2"], 4);
  for (const auto& [client, n] : counts) {
    EXPECT_TRUE(client == "c1" || client == "c2") << client;
  }
}

TEST_F(RouteTableTest, TwoGroupsOnSameFilterEachGetOneDelivery) {
  for (const char* c : {"a1", "a2", "b1"}) Online(c);
  table_.Add(SharedRoute("a1", "ga", "t/+", 1));
  table_.Add(SharedRoute("a2", "ga", "t/+", 1));
  table_.Add(SharedRoute("b1", "gb", "t/+", 1));
  table_.Add(Route("plain", "t/+", 1));

  std::map<std::string, int> counts;
  for (int i = 0; i < 4; ++i) {
    std::vector<Delivery> out = Match("t/x");
    ASSERT_EQ(out.size(), 3u);  // one per group plus the plain subscriber
    for (const Delivery& d : out) ++counts[d.client_id];
  }
  EXPECT_EQ(counts["plain"], 4);
  EXPECT_EQ(counts["b1"], 4);
  EXPECT_EQ(counts["a1"], 2);
  EXPECT_EQ(counts["a2"], 2);
}

TEST_F(RouteTableTest, SameGroupNameOnDifferentFiltersAreDifferentSharedSubscriptions) {
  // "$share/g/a/+" and "$share/g/a/#" are two shared subscriptions (MQTT 5 s4.8.2).
  Online("c1");
  Online("c2");
  table_.Add(SharedRoute("c1", "g", "a/+", 1));
  table_.Add(SharedRoute("c2", "g", "a/#", 1));
  EXPECT_THAT(MatchClients("a/b"), UnorderedElementsAre("c1", "c2"));
  EXPECT_THAT(MatchClients("a/b/c"), ElementsAre("c2"));
}

TEST_F(RouteTableTest, RemovedMemberLeavesTheRotation) {
  for (const char* c : {"c1", "c2"}) {
    Online(c);
    table_.Add(SharedRoute(c, "g", "t", 1));
  }
  table_.Remove("c1", "g", "t", 1);
  for (int i = 0; i < 3; ++i) EXPECT_THAT(MatchClients("t"), ElementsAre("c2"));
}

}  // namespace
}  // namespace shardmq::broker::session
