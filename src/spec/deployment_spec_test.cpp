#include "spec/deployment_spec.h"

#include <gtest/gtest.h>

#include "spec/job_yaml.h"

namespace lepton::spec {
namespace {

std::string yaml_error(std::string_view text) {
  auto r = parse_deployment_yaml(text, "chat.yaml");
  if (r.is_ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(DeploymentSpec, ReadsEveryFieldFromYaml) {
  auto r = parse_deployment_yaml(R"(kind: deployment
name: chat
resources: {accelerators: H100:1, cpus: 8, memory: 64}
envs: {MODEL: llama}
run: serve --port $PORT
port: 8000
replicas: {min: 0, max: 4}
autoscale: {target_in_flight: 16, window: 30, panic_window: 3, scale_to_zero_after: 120}
readiness: {path: /healthz}
auth: token
queue: serving
priority: 100
preemptible: false
)",
                                 "chat.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->name(), "chat");
  EXPECT_EQ(r->replica.resources.gpu_count, 1);
  EXPECT_EQ(r->replica.gpu_models, std::vector<std::string>{"H100"});
  EXPECT_EQ(r->replica.envs.at("MODEL"), "llama");
  EXPECT_EQ(r->port, 8000);
  EXPECT_EQ(r->min_replicas, 0);
  EXPECT_EQ(r->max_replicas, 4);
  EXPECT_EQ(r->target_in_flight, 16);
  EXPECT_EQ(r->window_s, 30);
  EXPECT_EQ(r->panic_window_s, 3);
  EXPECT_EQ(r->scale_to_zero_after_s, 120);
  EXPECT_EQ(r->readiness_path, "/healthz");
  EXPECT_TRUE(r->token_auth);
  EXPECT_EQ(r->replica.queue, "serving");
  EXPECT_EQ(r->replica.priority, 100);
  EXPECT_FALSE(r->replica.preemptible);
}

TEST(DeploymentSpec, DefaultsAndAReplicaCount) {
  auto r = parse_deployment_yaml("name: chat\nrun: serve\nreplicas: 3\n", "chat.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->min_replicas, 3);
  EXPECT_EQ(r->max_replicas, 3);
  EXPECT_EQ(r->port, 0);
  EXPECT_EQ(r->readiness_path, "/");
  EXPECT_FALSE(r->token_auth);
  EXPECT_EQ(r->target_in_flight, 8);
  EXPECT_EQ(r->window_s, 60);
  EXPECT_EQ(r->panic_window_s, 6);
}

TEST(DeploymentSpec, JsonRoundTripsThroughTheCanonicalForm) {
  auto r = parse_deployment_yaml(R"(name: chat
resources: {accelerators: T4:0.5}
run: serve
replicas: {min: 1, max: 2}
readiness: {path: /ready}
)",
                                 "chat.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const std::string json = deployment_spec_to_json(*r);
  auto back = deployment_spec_from_json(json);
  ASSERT_TRUE(back.is_ok()) << back.status().message() << " in " << json;
  EXPECT_EQ(*back, *r);
  EXPECT_NE(json.find("\"kind\":\"deployment\""), std::string::npos) << json;
}

TEST(DeploymentSpec, SpotReplicasWithAnOnDemandFloor) {
  auto spec = parse_deployment_yaml(
      "name: chat\nrun: serve\nresources: {accelerators: L4:1}\nuse_spot: true\n"
      "clouds: [gcp]\nreplicas: {min: 1, max: 4, min_on_demand: 1}\n",
      "chat.yaml");
  ASSERT_TRUE(spec.is_ok()) << spec.status().message();
  EXPECT_TRUE(spec->replica.use_spot);
  EXPECT_EQ(spec->replica.clouds, (std::vector<std::string>{"gcp"}));
  EXPECT_EQ(spec->min_on_demand, 1);
  auto again = deployment_spec_from_json(deployment_spec_to_json(*spec));
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(*again, *spec);
}

TEST(DeploymentSpec, ErrorsNameTheFieldAndWhereItIs) {
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nreplicas: {min: 3, max: 2}\n"),
            "chat.yaml:3:11: replicas: expected min <= max, got min 3 and max 2");
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nnum_nodes: 2\n"),
            "chat.yaml:3:1: num_nodes: unknown field, expected one of name, resources, envs, "
            "setup, run, queue, priority, preemptible, use_spot, clouds, regions, kind, port, "
            "replicas, autoscale, readiness, auth");
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nauth: bearer\n"),
            "chat.yaml:3:7: auth: expected public or token, got 'bearer'");
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nport: 70000\n"),
            "chat.yaml:3:7: port: expected an integer from 1 to 65535, got '70000'");
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nreadiness: {path: healthz}\n"),
            "chat.yaml:3:19: readiness.path: expected an HTTP path starting with '/', printable "
            "ASCII, no spaces, got 'healthz'");
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nautoscale: {window: 5, panic_window: 6}\n"),
            "chat.yaml:3:38: autoscale.panic_window: expected 1 second up to the window (5), got "
            "'6'");
  EXPECT_EQ(yaml_error("name: chat\nrun: serve\nreplicas: {max: 2, min_on_demand: -1}\n"),
            "chat.yaml:3:35: replicas.min_on_demand: expected an integer from 0 to 1000, got '-1'");
  EXPECT_EQ(yaml_error("kind: job\nname: chat\nrun: serve\n"),
            "chat.yaml:1:7: kind: expected deployment, got 'job'");
  EXPECT_EQ(yaml_error("name: chat\n"),
            "chat.yaml:1:1: run: expected a command to run (the field is required), got nothing");
}

TEST(DeploymentSpec, AJobSpecThatIsADeploymentSaysWhereItGoes) {
  auto r = parse_job_yaml("kind: deployment\nname: chat\nrun: serve\n", "chat.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(),
            "chat.yaml:1:7: kind: expected job (a deployment is created with lepton deploy create "
            "-f), got 'deployment'");
  EXPECT_TRUE(parse_job_yaml("kind: job\nname: train\nrun: train\n", "t.yaml").is_ok());
}

}  // namespace
}  // namespace lepton::spec
