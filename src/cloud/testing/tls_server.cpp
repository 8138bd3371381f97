#include "cloud/testing/tls_server.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/status.h"

namespace lepton::cloud::tls_testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  LEPTON_CHECK(ext != nullptr);
  LEPTON_CHECK(X509_add_ext(cert, ext, -1) == 1);
  X509_EXTENSION_free(ext);
}

}  // namespace

KeyAndCert make_certificate(const std::string& common_name, const KeyAndCert* issuer,
                            const std::vector<std::pair<int, const char*>>& extensions) {
  static long serial = 1;
  KeyAndCert out;
  out.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  LEPTON_CHECK(out.key != nullptr);
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  LEPTON_CHECK(X509_set_version(cert, X509_VERSION_3) == 1);
  LEPTON_CHECK(ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++) == 1);
  LEPTON_CHECK(X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr);
  LEPTON_CHECK(X509_gmtime_adj(X509_getm_notAfter(cert), 86400) != nullptr);
  LEPTON_CHECK(X509_set_pubkey(cert, out.key.get()) == 1);
  X509_NAME* name = X509_get_subject_name(cert);
  LEPTON_CHECK(X509_NAME_add_entry_by_txt(
                   name, "CN", MBSTRING_ASC,
                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) == 1);
  X509* issuer_cert = issuer ? issuer->cert.get() : cert;
  LEPTON_CHECK(X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert)) == 1);
  for (const auto& [nid, value] : extensions) add_extension(cert, issuer_cert, nid, value);
  EVP_PKEY* signer = issuer ? issuer->key.get() : out.key.get();
  LEPTON_CHECK(X509_sign(cert, signer, EVP_sha256()) > 0);
  return out;
}

KeyAndCert make_ca(const std::string& common_name) {
  return make_certificate(common_name, nullptr,
                          {{NID_basic_constraints, "critical,CA:TRUE"},
                           {NID_key_usage, "critical,keyCertSign,cRLSign"}});
}

KeyAndCert make_server_identity(const KeyAndCert& ca, const std::string& subject_alt_names) {
  return make_certificate("localhost", &ca,
                          {{NID_basic_constraints, "critical,CA:FALSE"},
                           {NID_key_usage, "critical,digitalSignature"},
                           {NID_ext_key_usage, "serverAuth"},
                           {NID_subject_alt_name, subject_alt_names.c_str()}});
}

std::string pem(X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  LEPTON_CHECK(PEM_write_bio_X509(bio.get(), cert) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

TlsServer::TlsServer(const KeyAndCert& identity, ServerOptions options)
    : options_(std::move(options)),
      acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
  LEPTON_CHECK(SSL_CTX_use_certificate(tls_.native_handle(), identity.cert.get()) == 1);
  LEPTON_CHECK(SSL_CTX_use_PrivateKey(tls_.native_handle(), identity.key.get()) == 1);
  port_ = acceptor_.local_endpoint().port();  // read here: the acceptor is the I/O thread's
  accept();
  thread_ = std::thread([this] { io_.run(); });
}

TlsServer::~TlsServer() {
  io_.stop();
  thread_.join();
}

std::vector<Received> TlsServer::wait_for_connections(size_t count) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::seconds(10), [&] { return ended_ >= count; });
  EXPECT_EQ(ended_, count) << "connections the server saw end";
  return received_;
}

void TlsServer::accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    auto session = std::make_shared<Session>(std::move(socket), tls_);
    if (options_.mode == ServerMode::kSilent) {
      held_.push_back(session);
      ended();
    } else {
      handshake(session);
    }
    accept();
  });
}

void TlsServer::handshake(const std::shared_ptr<Session>& s) {
  // A safety net so that no test can hang on the server; the tests' own deadlines are shorter.
  beast::get_lowest_layer(s->stream).expires_after(std::chrono::seconds(20));
  s->stream.async_handshake(ssl::stream_base::server, [this, s](beast::error_code ec) {
    if (ec) return ended();
    bhttp::async_read(s->stream, s->buffer, s->request,
                      [this, s](beast::error_code ec2, size_t) { on_request(s, ec2); });
  });
}

void TlsServer::on_request(const std::shared_ptr<Session>& s, beast::error_code ec) {
  if (ec) return ended();
  Received r;
  r.method = std::string(s->request.method_string());
  r.target = std::string(s->request.target());
  for (const auto& field : s->request) {
    r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  r.body = s->request.body();
  Answer answer{options_.status, options_.body};
  if (options_.handler && options_.mode == ServerMode::kAnswer) answer = options_.handler(r);
  {
    std::lock_guard lock(mu_);
    received_.push_back(std::move(r));
  }
  if (options_.mode == ServerMode::kNeverAnswer) {
    held_.push_back(s);
    return ended();
  }
  s->response.version(11);
  s->response.result(static_cast<unsigned>(answer.status));
  s->response.set(bhttp::field::content_type, "text/xml;charset=UTF-8");
  s->response.keep_alive(false);
  if (options_.mode == ServerMode::kHugeAnswer) {
    // Only the header: the client must refuse it before any body arrives.
    s->response.content_length((uint64_t{64} << 20) + 1);
    auto serializer = std::make_shared<bhttp::response_serializer<bhttp::string_body>>(s->response);
    bhttp::async_write_header(s->stream, *serializer,
                              [this, s, serializer](beast::error_code, size_t) { ended(); });
    return;
  }
  s->response.body() = std::move(answer.body);
  s->response.prepare_payload();
  bhttp::async_write(s->stream, s->response, [this, s](beast::error_code, size_t) { ended(); });
}

void TlsServer::ended() {
  std::lock_guard lock(mu_);
  ++ended_;
  cv_.notify_all();
}

}  // namespace lepton::cloud::tls_testing
