import COpenSSL
import Foundation
import Synchronization
import WeChatPay

/// A TLS front for a plain-HTTP simulator on loopback: terminates TLS with a self-signed
/// certificate for `commonName` and relays bytes both ways, so the client's https path (handshake,
/// certificate and host-name checks, keep-alive) is tested against a real TLS server.
final class TLSRelay: @unchecked Sendable {
    let port: UInt16
    /// The relay's certificate, to trust (or not) on the client side.
    let certificateFile: String
    private let listener: Int32
    private let accepted = Mutex(0)
    /// TLS connections accepted so far.
    var connectionsAccepted: Int { accepted.withLock { $0 } }
    private let context: OpaquePointer
    private let directory: String

    init(commonName: String, backendPort: UInt16) throws {
        directory = NSTemporaryDirectory() + "/authinfod-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = try RSAPrivateKey(generatingBits: 2048)
        let certificate = try X509Certificate.selfSigned(key: key, serialNumber: "01", commonName: commonName,
                                                         notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(3600))
        certificateFile = directory + "/relay.pem"
        try certificate.pem.write(toFile: certificateFile, atomically: true, encoding: .utf8)
        try key.pkcs8PEM().write(toFile: directory + "/relay.key", atomically: true, encoding: .utf8)
        context = SSL_CTX_new(TLS_server_method())!
        guard SSL_CTX_use_certificate_file(context, certificateFile, SSL_FILETYPE_PEM) == 1,
              SSL_CTX_use_PrivateKey_file(context, directory + "/relay.key", SSL_FILETYPE_PEM) == 1 else {
            throw CryptoError(function: "SSL_CTX_use_certificate_file", reason: "relay certificate refused")
        }
        let (fd, port) = loopbackSocket()
        listen(fd, 16)
        listener = fd
        self.port = port
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else {
                    // Closed here, by the only thread that uses it: closing it in `stop()` could
                    // let this thread accept on a descriptor number another test reused.
                    close(listener)
                    return
                }
                accepted.withLock { $0 += 1 }
                Thread.detachNewThread { [self] in Self.relay(client, context: context, backendPort: backendPort) }
            }
        }
    }

    /// Stops accepting (connections in progress end when either side closes): the shutdown
    /// wakes the accepting thread, which closes the listener.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func relay(_ client: Int32, context: OpaquePointer, backendPort: UInt16) {
        defer { close(client) }
        guard let ssl = SSL_new(context) else { return }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, client)
        guard SSL_accept(ssl) == 1 else { return }
        let backend = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(backend) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = backendPort.bigEndian
        let connected = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(backend, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: backend, events: Int16(POLLIN), revents: 0)]
            // Idle for as long as the fixtures keep connections alive (a full-suite run can stall a test for tens of seconds).
            if SSL_pending(ssl) == 0 { guard poll(&fds, 2, 300_000) > 0 else { return } } else { fds[0].revents = Int16(POLLIN) }
            if fds[0].revents != 0 {
                let count = SSL_read(ssl, &buffer, Int32(buffer.count))
                // A record that arrived in part, or one with no application data, is not the end.
                if count <= 0, SSL_get_error(ssl, count) == SSL_ERROR_WANT_READ { continue }
                guard count > 0, send(backend, buffer, Int(count), Int32(MSG_NOSIGNAL)) == Int(count) else { return }
            }
            if fds[1].revents != 0 {
                let count = recv(backend, &buffer, buffer.count, 0)
                guard count > 0, SSL_write(ssl, buffer, Int32(count)) == Int32(count) else { return }
            }
        }
    }
}
