// End-to-end: the EC2 provider behind a real `lepton server --aws-config`, over real HTTPS, to a
// stand-in for the EC2 endpoint on 127.0.0.1 (no cloud is reachable from here). The stand-in
// checks each request's SigV4 signature with the same credentials and answers in the shapes of
// the EC2 API Reference's examples (RunInstances, DescribeInstances, TerminateInstances). The
// machine's first boot is played by the test: it starts `lepton agent` named as the instance.
// Covers: a job that fits no node rents the cheapest fitting EC2 offer in the region, with the
// bootstrap script as user data; the machine joins and runs the job; the idle machine is
// terminated and its cost recorded.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cloud/aws_sigv4.h"
#include "cloud/testing/tls_server.h"
#include "net/http.h"
#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
namespace aws = cloud::aws;
namespace tls = cloud::tls_testing;
using nlohmann::json;
using namespace std::chrono_literals;

const aws::Credentials kCredentials{.access_key_id = "AKIDEXAMPLE",
                                    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                    .session_token = ""};

// RFC 4648 base64 with padding, as EC2 takes UserData.
std::string base64_decode(const std::string& text) {
  std::string out(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return "";
  // EVP_DecodeBlock counts each '=' of padding as a zero byte.
  const size_t padding = text.size() - text.find_last_not_of('=') - 1;
  out.resize(static_cast<size_t>(n) - std::min<size_t>(padding, static_cast<size_t>(n)));
  return out;
}

// The EC2 endpoint, as far as lepton uses it.
class FakeEc2 {
 public:
  struct Machine {
    std::string id, type, zone, market;
    int state = 0;  // EC2 state codes: 0 pending, 16 running, 32 shutting-down, 48 terminated
    std::map<std::string, std::string> tags;
    std::string user_data;
  };

  tls::Answer handle(const tls::Received& r) {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    if (std::string why = check_signature(r); !why.empty()) {
      bad_signatures_.push_back(why);
      return {403, error("SignatureDoesNotMatch", why)};
    }
    std::map<std::string, std::string> p = net::parse_query(r.body);
    const std::string action = p["Action"];
    actions_.push_back(action);
    if (action == "RunInstances") return run(p);
    if (action == "DescribeInstances") return describe();
    if (action == "TerminateInstances") return terminate(p);
    return {400, error("InvalidAction", "unknown action " + action)};
  }

  std::vector<Machine> machines() {
    std::lock_guard<std::mutex> lock(mu_);
    return machines_;
  }
  std::vector<std::string> bad_signatures() {
    std::lock_guard<std::mutex> lock(mu_);
    return bad_signatures_;
  }
  int count(const std::string& action) {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(std::count(actions_.begin(), actions_.end(), action));
  }
  void set_state(const std::string& id, int state) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Machine& m : machines_) {
      if (m.id == id) m.state = state;
    }
  }

 private:
  // Signs what arrived, without its Authorization header, with the same credentials and date:
  // the two must agree (so what was sent is exactly what was signed).
  static std::string check_signature(const tls::Received& r) {
    aws::HttpRequest request;
    request.method = r.method;
    request.path = r.target.substr(0, r.target.find('?'));
    request.body = r.body;
    std::string authorization, amz_date;
    for (const auto& [name, value] : r.headers) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "authorization") {
        authorization = value;
        continue;
      }
      if (lower == "x-amz-date") amz_date = value;
      if (lower == "content-length" || lower == "user-agent") continue;
      request.headers.emplace_back(name, value);
    }
    auto expected = aws::sign(request, kCredentials,
                              {.region = "us-east-1", .service = "ec2", .amz_date = amz_date});
    if (!expected.is_ok()) return "cannot sign: " + expected.status().message();
    if (expected->authorization != authorization) {
      return "got '" + authorization + "', expected '" + expected->authorization + "'";
    }
    return "";
  }

  static std::string error(const std::string& code, const std::string& message) {
    return "<Response><Errors><Error><Code>" + code + "</Code><Message>" + message +
           "</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID>"
           "</Response>";
  }

  static std::string state_xml(const std::string& element, int code) {
    const char* name = code == 0    ? "pending"
                       : code == 16 ? "running"
                       : code == 32 ? "shutting-down"
                                    : "terminated";
    return "<" + element + "><code>" + std::to_string(code) + "</code><name>" + name + "</name></" +
           element + ">";
  }

  static std::string instance_xml(const Machine& m) {
    std::string tags;
    for (const auto& [k, v] : m.tags) {
      tags += "<item><key>" + k + "</key><value>" + v + "</value></item>";
    }
    return "<item><instanceId>" + m.id + "</instanceId><imageId>ami-0abcdef1234567890</imageId>" +
           state_xml("instanceState", m.state) + "<instanceType>" + m.type +
           "</instanceType><launchTime>2026-11-26T12:00:00.000Z</launchTime><placement>"
           "<availabilityZone>" +
           m.zone + "</availabilityZone><tenancy>default</tenancy></placement>" +
           (m.market.empty() ? "" : "<instanceLifecycle>" + m.market + "</instanceLifecycle>") +
           "<privateIpAddress>10.0.0.12</privateIpAddress><tagSet>" + tags + "</tagSet></item>";
  }

  tls::Answer run(std::map<std::string, std::string>& p) {
    Machine m;
    m.id = "i-0" + std::to_string(1000000000000000 + machines_.size() + 1);
    m.type = p["InstanceType"];
    m.zone = "us-east-1a";
    m.market = p["InstanceMarketOptions.MarketType"];
    m.user_data = base64_decode(p["UserData"]);
    for (int t = 1; p.count("TagSpecification.1.Tag." + std::to_string(t) + ".Key"); ++t) {
      const std::string prefix = "TagSpecification.1.Tag." + std::to_string(t);
      m.tags[p[prefix + ".Key"]] = p[prefix + ".Value"];
    }
    machines_.push_back(m);
    return {200,
            "<RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
            "<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>"
            "<reservationId>r-1234567890abcdef0</reservationId><ownerId>123456789012</ownerId>"
            "<groupSet/><instancesSet>" +
                instance_xml(m) + "</instancesSet></RunInstancesResponse>"};
  }

  tls::Answer describe() {
    std::string items;
    for (const Machine& m : machines_) items += instance_xml(m);
    return {200,
            "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
            "<requestId>8f7724cf-496f-496e-8fe3-example</requestId><reservationSet><item>"
            "<reservationId>r-1234567890abcdef0</reservationId><ownerId>123456789012</ownerId>"
            "<groupSet/><instancesSet>" +
                items + "</instancesSet></item></reservationSet></DescribeInstancesResponse>"};
  }

  tls::Answer terminate(std::map<std::string, std::string>& p) {
    std::string items;
    for (Machine& m : machines_) {
      for (int i = 1; p.count("InstanceId." + std::to_string(i)); ++i) {
        if (p["InstanceId." + std::to_string(i)] != m.id) continue;
        items += "<item><instanceId>" + m.id + "</instanceId>" + state_xml("currentState", 32) +
                 state_xml("previousState", m.state) + "</item>";
        m.state = 48;
      }
    }
    return {200,
            "<TerminateInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
            "<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><instancesSet>" +
                items + "</instancesSet></TerminateInstancesResponse>"};
  }

  std::mutex mu_;
  int calls_ = 0;
  std::vector<Machine> machines_;
  std::vector<std::string> actions_;
  std::vector<std::string> bad_signatures_;
};

// `lepton server` (no gateway) renting from EC2 at a stand-in endpoint, over TLS to a CA made here.
class AwsCloud : public LeptonTest {
 protected:
  AwsCloud() : LeptonTest({.gateway = Gateway::kNone, .wait_timeout = 20s}) {}
  void SetUp() override {
    LeptonTest::SetUp();
    ca_ = std::make_unique<tls::KeyAndCert>(tls::make_ca("lepton test CA"));
    std::ofstream(dir_ / "ca.pem") << tls::pem(ca_->cert.get());
    ca_file_ = (dir_ / "ca.pem").string();
    ec2_server_ = std::make_unique<tls::TlsServer>(
        tls::make_server_identity(*ca_, "DNS:ec2.us-east-1.amazonaws.com"),  // as the real one
        tls::ServerOptions{.mode = tls::ServerMode::kAnswer,
                           .status = 200,
                           .body = "",
                           .handler = [this](const tls::Received& r) { return ec2_.handle(r); }});
    ::setenv("AWS_ACCESS_KEY_ID", kCredentials.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", kCredentials.secret_access_key.c_str(), 1);
  }
  void TearDown() override {
    LeptonTest::TearDown();
    ec2_server_.reset();
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
  }

  void start_server() {
    const json config = {{"region", "us-east-1"},
                         {"image_id", "ami-0abcdef1234567890"},
                         {"subnet_id", "subnet-0123456789abcdef0"},
                         {"security_group_ids", {"sg-0123456789abcdef0"}},
                         {"key_name", "lepton"},
                         {"endpoint", "127.0.0.1:" + std::to_string(ec2_server_->port())},
                         {"ca_file", ca_file_}};
    std::ofstream(dir_ / "aws.json") << config.dump();
    start({"--aws-config", (dir_ / "aws.json").string(), "--advertise-url", advertised_url(),
           "--cloud-idle", "2"});
  }
  // What the machines are told to reach the server at: not the URL it listens on.
  std::string advertised_url() const { return "http://localhost:" + std::to_string(port_); }
  std::unique_ptr<tls::KeyAndCert> ca_;
  std::string ca_file_;  // what lepton is told to trust
  FakeEc2 ec2_;
  std::unique_ptr<tls::TlsServer> ec2_server_;
};

TEST_F(AwsCloud, AJobRentsAnEc2MachineThatJoinsRunsItAndIsReturned) {
  start_server();
  // The cheapest on-demand A10G machine EC2 sells in us-east-1, from the bundled catalog.
  json offers =
      json::parse(run_command(std::string(LEPTON_BINARY) +
                              " offers --gpu A10G:1 --cloud aws --region us-east-1 --json")
                      .out,
                  nullptr, false);
  ASSERT_TRUE(offers.is_array() && !offers.empty()) << offers.dump();
  const std::string type = offers[0].value("instance_type", "");

  std::ofstream(dir_ / "job.yaml")
      << "name: on-ec2\nresources: {accelerators: 'A10G:1', cpus: 1, memory: 1}\n"
         "run: echo hello from $(hostname) on EC2\n";
  CommandResult run = cli("job run -f " + (dir_ / "job.yaml").string());
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string id = run.out.substr(0, run.out.find_first_of(" \n"));

  // One RunInstances, signed, for the cheapest fitting type, tagged, with the bootstrap script.
  ASSERT_TRUE(wait_until([&] { return ec2_.machines().size() == 1; }, 20s))
      << cli("job get " + id).out << log();
  const FakeEc2::Machine m = ec2_.machines()[0];
  EXPECT_EQ(m.type, type);
  ASSERT_TRUE(m.tags.count("lepton-pool") && m.tags.count("lepton-job")) << m.tags.size();
  EXPECT_EQ(m.tags.at("lepton-pool"), "default");
  EXPECT_EQ(m.tags.at("lepton-job"), id);
  EXPECT_TRUE(m.user_data.starts_with("#!/bin/sh\n")) << m.user_data;
  EXPECT_NE(m.user_data.find("/meta-data/instance-id"), std::string::npos) << m.user_data;
  EXPECT_NE(m.user_data.find("agent --server '" + advertised_url() + "'"), std::string::npos)
      << m.user_data;
  EXPECT_TRUE(ec2_.bad_signatures().empty()) << ec2_.bad_signatures()[0];
  // The launch is made off the control loop; the server takes up its answer on the next round.
  json instances;
  ASSERT_TRUE(wait_until(
      [&] {
        instances = cli_json("cloud ls --json");
        return instances.size() == 1;
      },
      10s))
      << instances.dump();
  EXPECT_EQ(instances[0].value("id", ""), m.id);
  EXPECT_EQ(instances[0].value("cloud", ""), "aws");

  // The machine boots: EC2 says running, and its first-boot script starts the agent under the
  // instance id (the test plays the machine, on this one).
  ec2_.set_state(m.id, 16);
  start_process("agent",
                {LEPTON_BINARY, "agent", "--server", url_, "--token-file", token_file().string(),
                 "--name", m.id, "--gpus", "A10G:1", "--work-dir", (dir_ / "machine").string()});
  ASSERT_TRUE(wait_until(
      [&] { return cli_json("job get " + id + " --json").value("state", "") == "SUCCEEDED"; }, 60s))
      << log();
  EXPECT_NE(cli("job logs " + id).out.find("hello from"), std::string::npos);

  // Idle for --cloud-idle: one TerminateInstances, and the machine is recorded as ended.
  ASSERT_TRUE(wait_until([&] { return ec2_.count("TerminateInstances") == 1; }, 30s)) << log();
  ASSERT_TRUE(wait_until(
      [&] {
        json all = cli_json("cloud ls --json");
        return all.size() == 1 && all[0].value("ended_ms", int64_t{0}) > 0;
      },
      30s))
      << cli("cloud ls").out << log();
  json cost = cli_json("cost --by job --json");
  ASSERT_EQ(cost["rows"].size(), 1u) << cost.dump();
  EXPECT_GT(cost["rows"][0].value("cost_usd", 0.0), 0.0);
  EXPECT_GE(ec2_.count("DescribeInstances"), 1);
  EXPECT_TRUE(ec2_.bad_signatures().empty());
}

TEST_F(AwsCloud, AnUntrustedEndpointRentsNothingAndSaysWhy) {
  // The stand-in's certificate is not signed by the CA lepton is told to trust.
  std::ofstream(dir_ / "other-ca.pem") << tls::pem(tls::make_ca("another CA").cert.get());
  ca_file_ = (dir_ / "other-ca.pem").string();
  start_server();
  std::ofstream(dir_ / "job.yaml")
      << "name: on-ec2\nresources: {accelerators: 'A10G:1', cpus: 1, memory: 1}\nrun: 'true'\n";
  CommandResult run = cli("job run -f " + (dir_ / "job.yaml").string());
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string id = run.out.substr(0, run.out.find_first_of(" \n"));
  // The job waits and says why: the endpoint's certificate is not trusted.
  ASSERT_TRUE(wait_until(
      [&] {
        return cli_json("job get " + id + " --json")
                   .value("reason", "")
                   .find("certificate verify failed: unable to get local issuer certificate") !=
               std::string::npos;
      },
      20s))
      << cli("job get " + id).out << log();
  EXPECT_TRUE(ec2_.machines().empty());
  EXPECT_EQ(cli_json("job get " + id + " --json").value("state", ""), "PENDING");
}

TEST_F(AwsCloud, BadConfigurationIsAClearError) {
  const std::string base = std::string(LEPTON_BINARY) + " server --data-dir " +
                           data_dir().string() + " --port 0 --gateway-port -1 ";
  std::ofstream(dir_ / "no-image.json") << R"({"region":"us-east-1"})";
  CommandResult r = run_command(base + "--aws-config " + (dir_ / "no-image.json").string() +
                                " --advertise-url " + url_ + " 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("aws config: image_id: required"), std::string::npos) << r.out;
  std::ofstream(dir_ / "ok.json") << R"({"region":"us-east-1","image_id":"ami-1"})";
  r = run_command(base + "--aws-config " + (dir_ / "ok.json").string() + " 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("give --advertise-url"), std::string::npos) << r.out;
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  r = run_command(base + "--aws-config " + (dir_ / "ok.json").string() + " --advertise-url " +
                  url_ + " 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(data_dir()));
}

}  // namespace
}  // namespace lepton::e2e
