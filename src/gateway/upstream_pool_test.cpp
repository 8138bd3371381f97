// A worker's pool of idle upstream connections: newest first, closed ones skipped, a cap per
// replica, replicas apart.
#include "gateway/upstream_pool.h"

#include <gtest/gtest.h>

namespace lepton::gateway {
namespace {

class UpstreamPoolTest : public testing::Test {
 protected:
  // An open socket (not connected: the pool only looks at whether it is open).
  std::unique_ptr<Socket> socket() {
    auto s = std::make_unique<Socket>(ioc_.get_executor());
    s->open(boost::asio::ip::tcp::v4());
    return s;
  }
  boost::asio::io_context ioc_;
};

TEST_F(UpstreamPoolTest, NothingPooledIsNothingTaken) {
  UpstreamPool pool(4);
  EXPECT_EQ(pool.take("127.0.0.1:1"), nullptr);
  EXPECT_EQ(pool.idle("127.0.0.1:1"), 0u);
}

TEST_F(UpstreamPoolTest, TheNewestConnectionIsTakenFirst) {
  UpstreamPool pool(4);
  auto a = socket();
  auto b = socket();
  Socket* first = a.get();
  Socket* second = b.get();
  pool.give_back("r:1", std::move(a));
  pool.give_back("r:1", std::move(b));
  EXPECT_EQ(pool.idle("r:1"), 2u);
  EXPECT_EQ(pool.take("r:1").get(), second);
  EXPECT_EQ(pool.take("r:1").get(), first);
  EXPECT_EQ(pool.take("r:1"), nullptr);
}

TEST_F(UpstreamPoolTest, ClosedConnectionsAreDroppedOnTheWay) {
  UpstreamPool pool(4);
  auto open = socket();
  Socket* kept = open.get();
  pool.give_back("r:1", std::move(open));
  auto closed = socket();
  closed->close();
  pool.give_back("r:1", std::move(closed));
  EXPECT_EQ(pool.take("r:1").get(), kept);
  EXPECT_EQ(pool.idle("r:1"), 0u);
}

TEST_F(UpstreamPoolTest, PastTheCapAConnectionIsClosedNotKept) {
  UpstreamPool pool(2);
  for (int i = 0; i < 3; ++i) pool.give_back("r:1", socket());
  EXPECT_EQ(pool.idle("r:1"), 2u);
  pool.give_back("r:2", socket());
  EXPECT_EQ(pool.idle("r:2"), 1u);
}

TEST_F(UpstreamPoolTest, ReplicasHaveTheirOwnConnections) {
  UpstreamPool pool(4);
  pool.give_back("r:1", socket());
  EXPECT_EQ(pool.take("r:2"), nullptr);
  EXPECT_NE(pool.take("r:1"), nullptr);
}

TEST_F(UpstreamPoolTest, ACapOfZeroPoolsNothing) {
  UpstreamPool pool(0);
  pool.give_back("r:1", socket());
  EXPECT_EQ(pool.take("r:1"), nullptr);
}

}  // namespace
}  // namespace lepton::gateway
