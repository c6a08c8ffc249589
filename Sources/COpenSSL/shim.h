#ifndef AUTHINFOD_COPENSSL_SHIM_H
#define AUTHINFOD_COPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/x509.h>

/* Function-like macros and variadic functions Swift cannot import. */

static inline void authinfod_openssl_free(void *p) { OPENSSL_free(p); }

static inline long authinfod_bio_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

static inline EVP_PKEY *authinfod_rsa_generate(unsigned int bits) {
    return EVP_RSA_gen(bits);
}

static inline int authinfod_pkey_is_rsa(const EVP_PKEY *key) {
    return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
}

static inline int authinfod_gcm_set_ivlen(EVP_CIPHER_CTX *ctx, int len) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, len, NULL);
}

static inline int authinfod_gcm_set_tag(EVP_CIPHER_CTX *ctx, int len, void *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, len, tag);
}

static inline int authinfod_gcm_get_tag(EVP_CIPHER_CTX *ctx, int len, void *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, len, tag);
}

/* Refuses every passphrase prompt: an encrypted key must fail, never block on a tty. */
static inline int authinfod_no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1;
}

static inline EVP_PKEY *authinfod_read_private_key(BIO *bio) {
    return PEM_read_bio_PrivateKey(bio, NULL, authinfod_no_passphrase, NULL);
}

static inline EVP_PKEY *authinfod_read_public_key(BIO *bio) {
    return PEM_read_bio_PUBKEY(bio, NULL, authinfod_no_passphrase, NULL);
}

static inline X509 *authinfod_read_x509(BIO *bio) {
    return PEM_read_bio_X509(bio, NULL, authinfod_no_passphrase, NULL);
}

/* TLS client: the SNI macro, and the option that lets a close-delimited body end without
   close_notify (answers are signature-verified, so a truncated one fails verification anyway). */
static inline long authinfod_ssl_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

static inline int authinfod_ssl_ctx_configure(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

/* TLS server (the LAN listener): TLS 1.2 and 1.3 only; for 1.2 only forward-secret AEAD suites
   (Mozilla "intermediate" without the DHE ones, which would need our own parameters); no
   renegotiation, no compression; buffers released while a connection is idle (thousands of
   long-polls), partial writes from a buffer that may move (the connection's output grows);
   read-ahead, so a record comes in one read() instead of a header read and a body read. */
static inline int authinfod_ssl_server_configure(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return 0;
    if (SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) return 0;
    return SSL_CTX_set_cipher_list(ctx,
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
}
#endif
