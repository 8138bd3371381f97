#include "core/job.h"

#include <gtest/gtest.h>

namespace lepton {
namespace {

JobSpec valid() {
  JobSpec s;
  s.name = "train-1";
  s.resources = Resources{4000, 16384, 1, 500};
  s.run = "echo hi";
  return s;
}

TEST(JobSpec, ValidateNamesTheField) {
  EXPECT_TRUE(validate_job_spec(valid()).is_ok());
  auto expect_field = [](JobSpec s, const std::string& field) {
    Status st = validate_job_spec(s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message().rfind(field, 0), 0u) << st.message();
  };
  JobSpec s = valid();
  s.name = "Train";
  expect_field(s, "name:");
  s = valid();
  s.name = std::string(64, 'a');
  expect_field(s, "name:");
  s = valid();
  s.num_nodes = 0;
  expect_field(s, "num_nodes:");
  s = valid();
  s.run.clear();
  expect_field(s, "run:");
  s = valid();
  s.max_restarts = -1;
  expect_field(s, "max_restarts:");
  s = valid();
  s.resources.gpu_milli = 2000;
  expect_field(s, "resources.gpu_milli");
  s = valid();
  s.envs["1BAD"] = "x";
  expect_field(s, "envs.1BAD:");
  s = valid();
  s.queue = "Team_A";
  expect_field(s, "queue:");
  s = valid();
  s.priority = 1001;
  expect_field(s, "priority:");
  s = valid();
  s.priority = -1001;
  expect_field(s, "priority:");
}

TEST(JobSpec, QueueFieldsDefaultAndBounds) {
  JobSpec s = valid();
  EXPECT_EQ(s.queue, "");  // the default queue
  EXPECT_EQ(s.priority, 0);
  EXPECT_TRUE(s.preemptible);
  s.queue = "team-a";
  s.priority = -1000;
  s.preemptible = false;
  EXPECT_TRUE(validate_job_spec(s).is_ok());
  s.priority = 1000;
  EXPECT_TRUE(validate_job_spec(s).is_ok());
  s.queue = std::string(63, 'q');
  EXPECT_TRUE(validate_job_spec(s).is_ok());
  s.queue = std::string(64, 'q');
  EXPECT_FALSE(validate_job_spec(s).is_ok());
}

TEST(JobState, NamesRoundTrip) {
  for (JobState st :
       {JobState::kPending, JobState::kScheduled, JobState::kStarting, JobState::kRunning,
        JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(parse_job_state(job_state_name(st)), st);
  }
  EXPECT_FALSE(parse_job_state("DONE").has_value());
  EXPECT_TRUE(is_terminal(JobState::kFailed));
  EXPECT_FALSE(is_terminal(JobState::kRunning));
}

}  // namespace
}  // namespace lepton
