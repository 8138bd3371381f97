#include "server/autoscaler.h"

#include <gtest/gtest.h>

#include <vector>

namespace lepton::server {
namespace {

DeploymentSpec spec(int min, int max) {
  DeploymentSpec s;
  s.replica.name = "chat";
  s.replica.run = "serve";
  s.min_replicas = min;
  s.max_replicas = max;
  s.target_in_flight = 4;
  s.window_s = 60;
  s.panic_window_s = 6;
  s.scale_to_zero_after_s = 30;
  return s;
}

// Observes `in_flight` every 100 ms from `from` to `to` (ms).
void feed(Autoscaler& a, int64_t from, int64_t to, double in_flight) {
  for (int64_t t = from; t < to; t += 100) a.observe(t, in_flight);
}

TEST(Autoscaler, SteadyLoadGetsCeilOfLoadOverTarget) {
  Autoscaler a(0);
  feed(a, 0, 60'000, 10);
  EXPECT_EQ(a.desired(spec(1, 10), 3, 3, 60'000), 3);  // 10 / 4 -> 3
  feed(a, 60'000, 120'000, 16);
  EXPECT_EQ(a.desired(spec(1, 10), 3, 3, 120'000), 4);
  EXPECT_EQ(a.desired(spec(1, 3), 3, 3, 120'000), 3) << "clamped to max";
  EXPECT_FALSE(a.panicking(120'000));
}

TEST(Autoscaler, ABurstPanicsAndNeverScalesDownDuringThePanic) {
  Autoscaler a(0);
  feed(a, 0, 60'000, 4);
  ASSERT_EQ(a.desired(spec(1, 20), 1, 1, 60'000), 1);
  // A burst: 40 in flight for 6 s. The stable average is still low (about 8 -> 2), the panic
  // average wants 10, which is at least twice the 1 replica there is.
  feed(a, 60'000, 66'000, 40);
  EXPECT_EQ(a.desired(spec(1, 20), 1, 1, 66'000), 10);
  EXPECT_TRUE(a.panicking(66'000));
  // The burst ends; for the rest of the panic (one window) the count does not go down.
  feed(a, 66'000, 100'000, 0);
  EXPECT_EQ(a.desired(spec(1, 20), 10, 10, 100'000), 10);
  // After the window: back to the stable average (nothing in flight for 34 s of 60 -> zero
  // wanted, held at min 1).
  feed(a, 100'000, 200'000, 0);
  EXPECT_FALSE(a.panicking(200'000));
  EXPECT_EQ(a.desired(spec(1, 20), 10, 10, 200'000), 1);
}

// The stepped load of `lepton bench autoscale`, with replicas ready 2 s after they are wanted: 50
// in flight from 10 s (a panic from one replica), 200 from 40 s to 100 s. Measured against the
// replicas that are ready, the jump to 200 extends the first panic, so the count does not dip when
// that panic's minute is over while the stable window still remembers the lower load.
TEST(Autoscaler, AStepUpDuringAnOlderPanicDoesNotDipWhenThatPanicEnds) {
  DeploymentSpec s = spec(1, 40);
  s.target_in_flight = 10;
  Autoscaler a(0);
  std::vector<int> wanted = {1, 1};  // by second
  for (int t = 1; t <= 100; ++t) {
    const double load = t <= 10 ? 0 : t <= 40 ? 50 : 200;
    feed(a, (t - 1) * 1000, t * 1000, load);
    const int ready = wanted[wanted.size() - 2];
    wanted.push_back(a.desired(s, wanted.back(), ready, t * 1000));
    if (t >= 50) {
      EXPECT_EQ(wanted.back(), 20) << "at " << t << " s";
    }
  }
  EXPECT_EQ(wanted[30], 5);  // 50 in flight before the jump
}

TEST(Autoscaler, AfterARestartKeepsWhatRunsUntilItHasSeenAPanicWindow) {
  Autoscaler a(100'000);  // started at 100 s with 4 replicas running
  a.observe(100'000, 0);
  EXPECT_EQ(a.desired(spec(1, 8), 4, 0, 100'000), 4);
  feed(a, 100'100, 105'000, 0);
  EXPECT_EQ(a.desired(spec(1, 8), 4, 4, 105'000), 4);
  feed(a, 105'000, 107'000, 0);
  EXPECT_EQ(a.desired(spec(1, 8), 4, 4, 107'000), 1) << "6 s of samples: nothing in flight";
}

TEST(Autoscaler, ARollingUpdatesExtraReplicaDoesNotRatchetAPanic) {
  Autoscaler a(0);
  feed(a, 0, 60'000, 4);
  feed(a, 60'000, 70'000, 40);  // a burst: panic on 1 ready replica
  const int want = a.desired(spec(1, 20), 1, 1, 70'000);
  ASSERT_EQ(want, 10);
  ASSERT_TRUE(a.panicking(70'000));
  // A rolling update now runs one replica more than wanted, round after round.
  const int current = want + 1;
  for (int64_t t = 70'000; t < 71'000; t += 50) {
    a.observe(t, 40);
    EXPECT_LE(a.desired(spec(1, 20), current, want, t), want) << "at " << t << " ms";
  }
}

TEST(Autoscaler, ScalesToZeroOnlyAfterTheQuietPeriodAndBackOnARequest) {
  Autoscaler a(0);
  // A new deployment with min 0 gets one replica until 30 s pass with no traffic.
  EXPECT_EQ(a.desired(spec(0, 4), 0, 0, 0), 1);
  feed(a, 0, 29'000, 0);
  EXPECT_EQ(a.desired(spec(0, 4), 1, 1, 29'000), 1);
  feed(a, 29'000, 31'000, 0);
  EXPECT_EQ(a.desired(spec(0, 4), 1, 1, 31'000), 0);
  // One request in flight (held by the gateway) brings one replica back at once.
  a.observe(40'000, 1);
  EXPECT_EQ(a.desired(spec(0, 4), 0, 0, 40'000), 1);
  // And it stays for the quiet period after the last request.
  feed(a, 40'100, 69'000, 0);
  EXPECT_EQ(a.desired(spec(0, 4), 1, 1, 69'000), 1);
  feed(a, 69'000, 71'000, 0);
  EXPECT_EQ(a.desired(spec(0, 4), 1, 1, 71'000), 0);
  // With min 1 it never goes to zero.
  EXPECT_EQ(a.desired(spec(1, 4), 1, 1, 71'000), 1);
}

}  // namespace
}  // namespace lepton::server
