#include "cloud/https_client.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cloud/testing/tls_server.h"

namespace lepton::cloud::aws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using tls_testing::KeyAndCert;
using tls_testing::make_ca;
using tls_testing::make_certificate;
using tls_testing::pem;
using tls_testing::Received;
using tls_testing::ServerMode;
using tls_testing::ServerOptions;
using tls_testing::TlsServer;

// --- Fixture ----------------------------------------------------------------------------------

class HttpsClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("lepton-https-unit-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    ca_ = std::make_unique<KeyAndCert>(make_ca("lepton test CA"));
    server_identity_ = std::make_unique<KeyAndCert>(make_certificate(
        "localhost", ca_.get(),
        {{NID_basic_constraints, "critical,CA:FALSE"},
         {NID_key_usage, "critical,digitalSignature"},
         {NID_ext_key_usage, "serverAuth"},
         {NID_subject_alt_name, "DNS:localhost,DNS:ec2.us-east-1.amazonaws.com,IP:127.0.0.1"}}));
    std::ofstream(dir_ / "ca.pem") << pem(ca_->cert.get());
    std::ofstream(dir_ / "other-ca.pem") << pem(make_ca("another CA").cert.get());
    // A CA with the test CA's name but another key: a matching issuer name must not be enough.
    std::ofstream(dir_ / "impostor-ca.pem") << pem(make_ca("lepton test CA").cert.get());
  }
  static void TearDownTestSuite() {
    fs::remove_all(dir_);
    server_identity_.reset();
    ca_.reset();
  }

  static std::string ca_file() { return (dir_ / "ca.pem").string(); }

  // Options that reach `server` on 127.0.0.1 and trust the test CA.
  static HttpsOptions options_for(const TlsServer& server,
                                  milliseconds timeout = milliseconds(10000)) {
    return {.connect_host = "127.0.0.1",
            .connect_port = server.port(),
            .ca_file = ca_file(),
            .timeout = timeout};
  }

  static HttpRequest post_to(const std::string& host) {
    HttpRequest r;
    r.method = "POST";
    r.path = "/";
    r.headers = {{"Host", host}, {"Content-Type", "application/x-www-form-urlencoded"}};
    r.body = "Action=DescribeInstances&Version=2016-11-15";
    return r;
  }

  static inline fs::path dir_;
  static inline std::unique_ptr<KeyAndCert> ca_;
  static inline std::unique_ptr<KeyAndCert> server_identity_;
};

std::string example(const std::string& name) {
  std::ifstream in(std::string(LEPTON_SOURCE_DIR) + "/src/cloud/testdata/ec2/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// --- Tests ------------------------------------------------------------------------------------

TEST_F(HttpsClientTest, SignedPostArrivesAsGivenAndTheAnswerComesBack) {
  TlsServer server(*server_identity_, {.status = 200, .body = "<ok>yes</ok>"});
  HttpRequest request;
  request.method = "POST";
  request.path = "/queue/a-b";
  request.query = {{"b", "x y/z"}, {"a", "1"}, {"empty", ""}, {"utf8", "\xc3\xa9"}};
  request.headers = {{"Host", "localhost"},
                     {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                     {"x-Custom-CASE", "kept  as  given"},
                     {"X-Repeated", "one"},
                     {"X-Repeated", "two"}};
  request.body = "Action=Send&Value=%20";
  auto signature = sign(request, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""},
                        {"us-east-1", "service", "20150830T123600Z"});
  ASSERT_TRUE(signature.is_ok()) << signature.status().message();

  auto response = https_send(request, options_for(server));
  ASSERT_TRUE(response.is_ok()) << response.status().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "<ok>yes</ok>");

  const std::vector<Received> received = server.wait_for_connections(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "POST");
  // The query as SigV4 canonicalised it when signing: sorted, RFC 3986 encoded, '/' encoded too.
  EXPECT_EQ(received[0].target, "/queue/a-b?a=1&b=x%20y%2Fz&empty=&utf8=%C3%A9");
  EXPECT_EQ(received[0].target, request.path + "?" + canonical_query(request.query));
  // Every header as signed, in order, names and values untouched (the inner double spaces, which
  // SigV4 collapses when signing, included); only Content-Length is added.
  NameValues expected = request.headers;
  expected.emplace_back("Content-Length", std::to_string(request.body.size()));
  EXPECT_EQ(received[0].headers, expected);
  EXPECT_EQ(received[0].body, request.body);
}

TEST_F(HttpsClientTest, AnHttpErrorStatusIsAResponseNotAnError) {
  const std::string error_body = example("error_response.xml");
  TlsServer server(*server_identity_, {.status = 400, .body = error_body});
  auto response = https_send(post_to("localhost"), options_for(server));
  ASSERT_TRUE(response.is_ok()) << response.status().message();
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->body, error_body);
}

TEST_F(HttpsClientTest, AGetWithoutBodyHasNoContentLength) {
  TlsServer server(*server_identity_, {.body = "fine"});
  HttpRequest request;
  request.headers = {{"Host", "localhost"}};
  auto response = https_send(request, options_for(server));
  ASSERT_TRUE(response.is_ok()) << response.status().message();
  const std::vector<Received> received = server.wait_for_connections(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "GET");
  EXPECT_EQ(received[0].target, "/");
  EXPECT_EQ(received[0].headers, (NameValues{{"Host", "localhost"}}));
}

TEST_F(HttpsClientTest, AnIpAddressHostIsCheckedAgainstTheIpSubjectAltName) {
  TlsServer server(*server_identity_, {.body = "fine"});
  // The connection goes to the Host header's address when connect_host is empty.
  auto response =
      https_send(post_to("127.0.0.1"), {.connect_port = server.port(), .ca_file = ca_file()});
  ASSERT_TRUE(response.is_ok()) << response.status().message();
  EXPECT_EQ(response->body, "fine");
}

TEST_F(HttpsClientTest, Ec2ProviderWorksOverTheHttpsTransport) {
  TlsServer server(*server_identity_, {.body = example("describe_instances.xml")});
  Ec2ProviderConfig config;
  config.region = "us-east-1";
  config.credentials = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  Ec2Provider provider(config, {}, https_transport(options_for(server)),
                       [] { return std::chrono::sys_seconds(std::chrono::seconds(1440938160)); });
  auto instances = provider.list_instances();
  ASSERT_TRUE(instances.is_ok()) << instances.status().message();
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ((*instances)[0].id, "i-1234567890abcdef0");
  const std::vector<Received> received = server.wait_for_connections(1);
  ASSERT_EQ(received.size(), 1u);
  ASSERT_FALSE(received[0].headers.empty());
  EXPECT_EQ(received[0].headers[0],
            (std::pair<std::string, std::string>{"Host", "ec2.us-east-1.amazonaws.com"}));
  EXPECT_NE(received[0].body.find("Action=DescribeInstances"), std::string::npos);
}

TEST_F(HttpsClientTest, AnUntrustedCertificateFailsTheHandshakeAndNothingIsSent) {
  const std::pair<std::string, std::string> cases[] = {
      {"other-ca.pem", "unable to get local issuer certificate"},
      {"impostor-ca.pem", "certificate signature failure"}};
  for (const auto& [trusted, why] : cases) {
    SCOPED_TRACE(trusted);
    TlsServer server(*server_identity_, {.body = "must not be read"});
    HttpsOptions options = options_for(server);
    options.ca_file = (dir_ / trusted).string();
    auto response = https_send(post_to("localhost"), options);
    ASSERT_FALSE(response.is_ok());
    EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(response.status().message(),
              "https localhost via 127.0.0.1:" + std::to_string(server.port()) +
                  ": TLS handshake: certificate verify failed: " + why);
    EXPECT_TRUE(server.wait_for_connections(1).empty());
  }
}

TEST_F(HttpsClientTest, TheSystemTrustStoreDoesNotTrustTheTestCa) {
  TlsServer server(*server_identity_, {.body = "must not be read"});
  HttpsOptions options = options_for(server);
  options.ca_file.clear();
  auto response = https_send(post_to("localhost"), options);
  ASSERT_FALSE(response.is_ok());
  EXPECT_NE(response.status().message().find(
                "TLS handshake: certificate verify failed: unable to get local issuer certificate"),
            std::string::npos)
      << response.status().message();
  EXPECT_TRUE(server.wait_for_connections(1).empty());
}

TEST_F(HttpsClientTest, AHostTheCertificateIsNotForFailsVerification) {
  TlsServer server(*server_identity_, {.body = "must not be read"});
  auto response = https_send(post_to("ec2.eu-west-1.amazonaws.com"), options_for(server));
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(response.status().message(),
            "https ec2.eu-west-1.amazonaws.com via 127.0.0.1:" + std::to_string(server.port()) +
                ": TLS handshake: certificate verify failed: hostname mismatch");
  EXPECT_TRUE(server.wait_for_connections(1).empty());
}

TEST_F(HttpsClientTest, AClosedPortIsUnavailableAtOnce) {
  uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  const auto start = Clock::now();
  auto response = https_send(post_to("localhost"), {.connect_host = "127.0.0.1",
                                                    .connect_port = port,
                                                    .ca_file = ca_file(),
                                                    .timeout = milliseconds(10000)});
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find(": connect: Connection refused"), std::string::npos)
      << response.status().message();
  EXPECT_LT(elapsed, milliseconds(2000));
}

TEST_F(HttpsClientTest, AServerThatNeverAnswersTimesOut) {
  TlsServer server(*server_identity_, {.mode = ServerMode::kSilent});
  const auto start = Clock::now();
  auto response = https_send(post_to("localhost"), options_for(server, milliseconds(300)));
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find(": TLS handshake: timed out after 300 ms"),
            std::string::npos)
      << response.status().message();
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(3000));
  server.wait_for_connections(1);  // it did connect: the time went into the handshake
}

TEST_F(HttpsClientTest, TheTimeoutCoversWaitingForTheAnswer) {
  TlsServer server(*server_identity_, {.mode = ServerMode::kNeverAnswer});
  const auto start = Clock::now();
  auto response = https_send(post_to("localhost"), options_for(server, milliseconds(300)));
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find(": reading the answer: timed out after 300 ms"),
            std::string::npos)
      << response.status().message();
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(3000));
  EXPECT_EQ(server.wait_for_connections(1).size(), 1u);
}

TEST_F(HttpsClientTest, AnAnswerOverTheBodyLimitIsAnError) {
  TlsServer server(*server_identity_, {.mode = ServerMode::kHugeAnswer});
  auto response = https_send(post_to("localhost"), options_for(server));
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find(": reading the answer: body limit exceeded"),
            std::string::npos)
      << response.status().message();
}

TEST_F(HttpsClientTest, RequestsThatCannotBeSentAsSignedAreRefusedBeforeConnecting) {
  // No server: a refused request must not get as far as connecting (port 1 would be refused).
  const HttpsOptions options{.connect_host = "127.0.0.1", .connect_port = 1, .ca_file = ca_file()};
  auto expect_invalid = [&](const HttpRequest& request, const std::string& part) {
    auto response = https_send(request, options);
    ASSERT_FALSE(response.is_ok()) << part;
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument)
        << response.status().message();
    EXPECT_NE(response.status().message().find(part), std::string::npos)
        << response.status().message();
  };
  HttpRequest no_host;
  expect_invalid(no_host, "no Host header");

  HttpRequest split = post_to("localhost");
  split.headers.emplace_back("X-Injected", "a\r\nEvil: yes");
  expect_invalid(split, "X-Injected");

  HttpRequest wrong_length = post_to("localhost");
  wrong_length.headers.emplace_back("Content-Length", "3");
  expect_invalid(wrong_length, "Content-Length '3'");

  HttpRequest chunked = post_to("localhost");
  chunked.headers.emplace_back("Transfer-Encoding", "chunked");
  expect_invalid(chunked, "Transfer-Encoding");

  HttpRequest bad_path = post_to("localhost");
  bad_path.path = "/a b";
  expect_invalid(bad_path, "path '/a b'");

  HttpRequest bad_method = post_to("localhost");
  bad_method.method = "GET /x HTTP/1.1\r\n";
  expect_invalid(bad_method, "method");

  HttpsOptions no_time = options;
  no_time.timeout = milliseconds(0);
  auto response = https_send(post_to("localhost"), no_time);
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);

  HttpsOptions missing_ca = options;
  missing_ca.ca_file = (dir_ / "absent.pem").string();
  response = https_send(post_to("localhost"), missing_ca);
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(response.status().message().find("absent.pem"), std::string::npos)
      << response.status().message();
}

}  // namespace
}  // namespace lepton::cloud::aws
