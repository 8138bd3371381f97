// Test support: certificates made with OpenSSL 3's C API, and a TLS HTTP/1.1 server on
// 127.0.0.1, for tests of the HTTPS client (cloud/https_client_test.cpp) and of a cloud adapter
// end to end (tests/aws_cloud_test.cpp). Not part of lepton itself.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cloud/aws_sigv4.h"

namespace lepton::cloud::tls_testing {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};

struct KeyAndCert {
  std::unique_ptr<EVP_PKEY, KeyFree> key;
  std::unique_ptr<X509, CertFree> cert;
};

// A P-256 key and a certificate for it valid from an hour ago for a day, signed by `issuer` (or by
// itself when there is none). `extensions` are (NID, value in openssl.cnf syntax).
KeyAndCert make_certificate(const std::string& common_name, const KeyAndCert* issuer,
                            const std::vector<std::pair<int, const char*>>& extensions);
KeyAndCert make_ca(const std::string& common_name);
// A server certificate signed by `ca` for `subject_alt_names` ("DNS:localhost,IP:127.0.0.1").
KeyAndCert make_server_identity(const KeyAndCert& ca, const std::string& subject_alt_names);
// The certificate in PEM.
std::string pem(X509* cert);

struct Received {
  std::string method;
  std::string target;
  aws::NameValues headers;  // as they arrived, names as sent, in order
  std::string body;
};

struct Answer {
  int status = 200;
  std::string body{};
};

enum class ServerMode {
  kAnswer,       // handshake, read the request, answer (the handler's answer, or `status`/`body`)
  kNeverAnswer,  // handshake and read the request, then hold the connection without answering
  kSilent,       // accept and hold the connection without a TLS handshake
  kHugeAnswer,   // answer with headers announcing a body over the client's 64 MiB limit
};

struct ServerOptions {
  ServerMode mode = ServerMode::kAnswer;
  int status = 200;
  std::string body{};
  // When set (kAnswer), the answer to each request; called on the server's thread.
  std::function<Answer(const Received&)> handler{};
};

// Serves on its own thread, one request per connection. A connection "ends" when it was
// answered, failed, or is being held; wait_for_connections() is how a test knows the server is
// done with what the client sent.
class TlsServer {
 public:
  TlsServer(const KeyAndCert& identity, ServerOptions options);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  uint16_t port() const { return port_; }

  // Waits (at most 10 s) until `count` connections have ended (a test failure when they have
  // not); returns the requests received.
  std::vector<Received> wait_for_connections(size_t count);

 private:
  struct Session {
    explicit Session(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls)
        : stream(std::move(socket), tls) {}
    boost::asio::ssl::stream<boost::beast::tcp_stream> stream;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> request;
    boost::beast::http::response<boost::beast::http::string_body> response;
  };

  void accept();
  void handshake(const std::shared_ptr<Session>& s);
  void on_request(const std::shared_ptr<Session>& s, boost::beast::error_code ec);
  void ended();

  ServerOptions options_;
  boost::asio::io_context io_;
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_server};
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::shared_ptr<Session>> held_;  // I/O thread only
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t ended_ = 0;                // guarded by mu_
  std::vector<Received> received_;  // guarded by mu_
};

}  // namespace lepton::cloud::tls_testing
