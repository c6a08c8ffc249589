// refresh-floor: a floor under authinfod's CPU per refresh on this machine. `make bench` builds
// it with the system C compiler and runs it against the same simulator in the same run.
//
// It does the work of one refresh and nothing else, plainly in C: one thread, one poll(2) loop
// over IN_FLIGHT kept-alive loopback connections (the daemon's max_concurrent_requests in the
// bench), and per refresh:
//   - a JSON body, a 32-character nonce, SHA-256 and an RSA-2048 PKCS#1 v1.5 signature (one
//     EVP_PKEY_CTX set up once, as authinfod does), base64, the Authorization header;
//   - one HTTP/1.1 request written, the answer read until Content-Length is in;
//   - the answer's Wechatpay-Signature verified with the gateway's public key;
//   - one SQLite commit of an 8-column row (WAL, synchronous=NORMAL, a prepared statement);
//   - the device's JSON document written to a temporary file and renamed into place;
//   - one log line appended.
// What it leaves out, and authinfod does: a real JSON parser for the answer (here strstr), the
// HTTP header block kept as fields, timeouts, retries, scheduling, served documents, metrics,
// hooks, and any thread hand-off; its row has 8 columns to the daemon's 17. It is not a strict
// lower bound (batched commits, or files linked into place, would cost less): it is the same
// design with nothing else around it.
//
// usage: refresh-floor PORT MCHID SERIAL_NO MERCHANT_KEY_PEM GATEWAY_PUBLIC_KEY_PEM CALLS IN_FLIGHT DB_DIR PUBLISH_DIR
// Prints one line: "cpu_seconds_per_refresh kernel_seconds_per_refresh", over the CALLS refreshes
// completed after WARM_UP (200) first ones.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { WARM_UP = 200, MAX_IN_FLIGHT = 64, ANSWER_BYTES = 16384, SIGNATURE_BYTES = 512 };

struct connection {
    int fd;
    int busy;
    int received;
    char *headerEnd;
    long contentLength;
    char device[32];
    char answer[ANSWER_BYTES];
};

static void fail(const char *what) {
    fprintf(stderr, "refresh-floor: %s\n", what);
    exit(1);
}

static void cpuSeconds(double *total, double *kernel) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    *kernel = usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    *total = *kernel + usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6;
}

static EVP_PKEY_CTX *keyContext(const char *path, int private) {
    FILE *file = fopen(path, "r");
    if (!file) fail(path);
    EVP_PKEY *key = private ? PEM_read_PrivateKey(file, NULL, NULL, NULL) : PEM_read_PUBKEY(file, NULL, NULL, NULL);
    fclose(file);
    if (!key) fail(path);
    EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (!context || (private ? EVP_PKEY_sign_init(context) : EVP_PKEY_verify_init(context)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) != 1 || EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) != 1)
        fail("cannot set up an RSA context");
    return context;
}

static void nonce(char *out) {
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char random[32];
    if (RAND_bytes(random, sizeof random) != 1) fail("RAND_bytes");
    for (int i = 0; i < 32; i++) out[i] = alphabet[random[i] % 62];
    out[32] = 0;
}

/// The value of header field `name` (given as "\r\nName:") in `head`, or NULL.
static char *field(char *head, const char *name, int *length) {
    char *value = strcasestr(head, name);
    if (!value) return NULL;
    value += strlen(name);
    while (*value == ' ') value++;
    *length = (int)strcspn(value, "\r");
    return value;
}

int main(int argc, char **argv) {
    if (argc != 10) fail("usage: refresh-floor PORT MCHID SERIAL_NO MERCHANT_KEY GATEWAY_PUBLIC_KEY CALLS IN_FLIGHT DB_DIR PUBLISH_DIR");
    int port = atoi(argv[1]), calls = atoi(argv[6]), inFlight = atoi(argv[7]);
    const char *mchid = argv[2], *serial = argv[3], *dbDirectory = argv[8], *publishDirectory = argv[9];
    if (port <= 0 || calls <= 0 || inFlight <= 0 || inFlight > MAX_IN_FLIGHT) fail("bad PORT, CALLS or IN_FLIGHT");
    EVP_PKEY_CTX *signer = keyContext(argv[4], 1), *verifier = keyContext(argv[5], 0);

    static struct connection connections[MAX_IN_FLIGHT];
    struct pollfd polls[MAX_IN_FLIGHT];
    for (int i = 0; i < inFlight; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("cannot connect to the gateway");
        fcntl(fd, F_SETFL, O_NONBLOCK);
        connections[i].fd = fd;
    }
    char path[1024];
    sqlite3 *db;
    sqlite3_stmt *upsert;
    snprintf(path, sizeof path, "%s/refresh-floor.db", dbDirectory);
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE IF NOT EXISTS devices(device_id TEXT PRIMARY KEY, "
                         "authinfo TEXT, fetched_at REAL, expires_at REAL, next_attempt_at REAL, failures INTEGER, raw_data_digest TEXT, "
                         "last_error TEXT) WITHOUT ROWID", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO devices VALUES(?,?,?,?,?,0,?,NULL)", -1, &upsert, NULL) != SQLITE_OK)
        fail(sqlite3_errmsg(db));
    snprintf(path, sizeof path, "%s/refresh-floor.log", dbDirectory);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) fail(path);

    static char body[1024], message[2048], request[4096], line[512], document[512], temporary[1024], final[1024];
    unsigned char signature[SIGNATURE_BYTES], digest[32];
    char base64[4 * SIGNATURE_BYTES / 3 + 4];
    double startCPU = 0, startKernel = 0;
    int sent = -WARM_UP, done = -WARM_UP;
    while (done < calls) {
        for (int i = 0; i < inFlight && sent < calls; i++) {
            struct connection *c = &connections[i];
            if (c->busy) continue;
            snprintf(c->device, sizeof c->device, "dev-%06d", (sent + WARM_UP) % 10000 + 1);
            sent++;
            int bodyLength = snprintf(body, sizeof body, "{\"device_id\":\"%s\",\"organization_id\":\"org-1\",\"raw_data\":\"RAW-%s\","
                                                         "\"sp_appid\":\"wx8888888888888888\",\"sub_mchid\":\"1900000999\"}", c->device, c->device);
            long timestamp = time(NULL);
            char nonceText[33];
            nonce(nonceText);
            int messageLength = snprintf(message, sizeof message, "POST\n/v3/offlineface/authinfo\n%ld\n%s\n%s\n", timestamp, nonceText, body);
            if (bodyLength >= (int)sizeof body || messageLength >= (int)sizeof message) fail("a request too long");
            size_t signatureLength = sizeof signature;
            if (!EVP_Digest(message, messageLength, digest, NULL, EVP_sha256(), NULL) ||
                EVP_PKEY_sign(signer, signature, &signatureLength, digest, sizeof digest) != 1)
                fail("sign failed");
            EVP_EncodeBlock((unsigned char *)base64, signature, (int)signatureLength);
            int requestLength = snprintf(request, sizeof request,
                "POST /v3/offlineface/authinfo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: refresh-floor/1\r\nAccept: application/json\r\n"
                "Content-Type: application/json\r\nAuthorization: WECHATPAY2-SHA256-RSA2048 mchid=\"%s\",nonce_str=\"%s\",signature=\"%s\","
                "timestamp=\"%ld\",serial_no=\"%s\"\r\nContent-Length: %d\r\n\r\n%s",
                port, mchid, nonceText, base64, timestamp, serial, bodyLength, body);
            if (requestLength >= (int)sizeof request) fail("a request too long");
            // About 900 bytes on an idle loopback connection: one send takes it all, or the run stops.
            if (send(c->fd, request, requestLength, MSG_NOSIGNAL) != requestLength) fail("send failed");
            c->busy = 1;
            c->received = 0;
            c->headerEnd = NULL;
            c->contentLength = -1;
        }
        for (int i = 0; i < inFlight; i++) polls[i] = (struct pollfd){.fd = connections[i].busy ? connections[i].fd : -1, .events = POLLIN};
        if (poll(polls, inFlight, 5000) <= 0) fail("no answer within 5 s");
        for (int i = 0; i < inFlight; i++) {
            struct connection *c = &connections[i];
            if (!c->busy || !(polls[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (c->received >= ANSWER_BYTES - 1) fail("an answer larger than 16 KiB");
            ssize_t count = recv(c->fd, c->answer + c->received, ANSWER_BYTES - 1 - c->received, 0);
            if (count == 0) fail("the gateway closed a connection");
            if (count < 0) continue;
            c->received += (int)count;
            c->answer[c->received] = 0;
            if (!c->headerEnd && (c->headerEnd = strstr(c->answer, "\r\n\r\n"))) {
                int length;
                char *value = field(c->answer, "\r\nContent-Length:", &length);
                if (!value) fail("an answer without Content-Length");
                c->contentLength = atol(value);
                if (c->contentLength < 0 || c->contentLength > ANSWER_BYTES / 2) fail("an answer with a bad Content-Length");
            }
            if (!c->headerEnd || c->received < (c->headerEnd + 4 - c->answer) + c->contentLength) continue;
            c->busy = 0;
            // The measurement starts when the warm-up's last answer is in, wherever in a poll
            // round that happens.
            if (++done == 0) cpuSeconds(&startCPU, &startKernel);
            *c->headerEnd = 0;
            char *answerBody = c->headerEnd + 4;
            answerBody[c->contentLength] = 0;
            if (strncmp(c->answer, "HTTP/1.1 200", 12) != 0) fail(answerBody);
            int timestampLength = 0, nonceLength = 0, signatureTextLength = 0;
            char *answerTimestamp = field(c->answer, "\r\nWechatpay-Timestamp:", &timestampLength);
            char *answerNonce = field(c->answer, "\r\nWechatpay-Nonce:", &nonceLength);
            char *answerSignature = field(c->answer, "\r\nWechatpay-Signature:", &signatureTextLength);
            if (!answerTimestamp || !answerNonce || !answerSignature) fail("an answer without its signature");
            if (signatureTextLength > 4 * SIGNATURE_BYTES / 3) fail("an answer signature too long");
            int messageLength = snprintf(message, sizeof message, "%.*s\n%.*s\n%s\n", timestampLength, answerTimestamp, nonceLength, answerNonce, answerBody);
            if (messageLength >= (int)sizeof message) fail("an answer too long to verify here");
            int decoded = EVP_DecodeBlock(signature, (unsigned char *)answerSignature, signatureTextLength);
            for (int end = signatureTextLength; end > 0 && answerSignature[end - 1] == '='; end--) decoded--;
            if (!EVP_Digest(message, messageLength, digest, NULL, EVP_sha256(), NULL) ||
                EVP_PKEY_verify(verifier, signature, decoded, digest, sizeof digest) != 1)
                fail("an answer's signature does not verify");
            char *value = strstr(answerBody, "\"authinfo\":\"");
            if (!value) fail("an answer without authinfo");
            value += 12;
            int valueLength = (int)strcspn(value, "\"");
            double now = (double)time(NULL);
            sqlite3_bind_text(upsert, 1, c->device, -1, SQLITE_STATIC);
            sqlite3_bind_text(upsert, 2, value, valueLength, SQLITE_STATIC);
            sqlite3_bind_double(upsert, 3, now);
            sqlite3_bind_double(upsert, 4, now + 3600);
            sqlite3_bind_double(upsert, 5, now + 3000);
            sqlite3_bind_text(upsert, 6, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", -1, SQLITE_STATIC);
            if (sqlite3_step(upsert) != SQLITE_DONE) fail(sqlite3_errmsg(db));
            sqlite3_reset(upsert);
            int documentLength = snprintf(document, sizeof document, "{\"device_id\":\"%s\",\"authinfo\":\"%.*s\",\"fetched_at\":%ld,\"expires_at\":%ld}",
                                          c->device, valueLength, value, (long)now, (long)now + 3600);
            if (documentLength >= (int)sizeof document) fail("an authinfo too long for this floor");
            snprintf(temporary, sizeof temporary, "%s/.%s.json.tmp", publishDirectory, c->device);
            snprintf(final, sizeof final, "%s/%s.json", publishDirectory, c->device);
            int file = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
            if (file < 0 || write(file, document, documentLength) != documentLength || close(file) != 0 || rename(temporary, final) != 0)
                fail("cannot publish a file");
            int lineLength = snprintf(line, sizeof line, "ts=2026-12-03T19:00:00.000Z level=info event=refreshed device=%s expires_in=3600 "
                                                         "next_refresh_in=3000\n", c->device);
            if (write(log, line, lineLength) != lineLength) fail("cannot write the log");
        }
    }
    double endCPU, endKernel;
    cpuSeconds(&endCPU, &endKernel);
    printf("%.9f %.9f\n", (endCPU - startCPU) / calls, (endKernel - startKernel) / calls);
    sqlite3_finalize(upsert);
    sqlite3_close(db);
    return 0;
}
