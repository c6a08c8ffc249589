import Foundation
import Testing
import WeChatPay
import WeChatPaySimulator

/// The official test key and vectors from ../shared/vectors, copied into Fixtures/.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    /// The merchant key of the official documentation (PKCS#1 PEM).
    static let merchantKey: RSAPrivateKey = try! RSAPrivateKey(pem: text("official-test-key.pem"))
    /// Gateway keys shared by every test, so each simulator starts without a key generation.
    static let gatewayCredentials: SimulatorCredentials = try! SimulatorCredentials.generate()
}

/// A simulator and a client configured for it, the way a merchant's config would be.
struct GatewayFixture {
    static let mchid = "1900000109"
    static let serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"

    let simulator: WeChatPaySimulator
    var configuration: ClientConfiguration

    init(signingMode: SimulatorSigningMode = .publicKey, verifyWithPublicKey: Bool = true, verifyWithCertificates: Bool = false) throws {
        let merchant = WeChatPaySimulator.Merchant(mchid: Self.mchid, serialNumber: Self.serial, publicKey: try Fixtures.merchantKey.publicKey())
        // A long idle timeout: in a full-suite run, an async test may wait tens of seconds for a
        // thread while the end-to-end suites block theirs, and a kept-alive connection must not
        // be closed by the server in between.
        simulator = try WeChatPaySimulator(merchant: merchant, credentials: Fixtures.gatewayCredentials, signingMode: signingMode,
                                           idleTimeout: 300)
        let credentials = simulator.credentials
        let publicKey = verifyWithPublicKey
            ? WeChatPayPublicKey(id: credentials.publicKeyID, key: try RSAPublicKey(pem: credentials.publicKeyPEM())) : nil
        let apiV3Key = verifyWithCertificates ? SecretBytes(Array(credentials.apiV3Key.utf8)) : nil
        configuration = ClientConfiguration(
            signer: RequestSigner(mchid: Self.mchid, serialNumber: Self.serial, privateKey: Fixtures.merchantKey),
            publicKey: publicKey, apiV3Key: apiV3Key, baseURL: simulator.baseURL)
        configuration.timeout = 5
        configuration.keepAliveSeconds = 300
    }

    func client() -> WeChatPayClient { WeChatPayClient(configuration: configuration) }

    static let device = AuthInfoRequest(spAppID: "wx8888888888888888", subAppID: nil, subMchID: "1900000999",
                                        deviceID: "dev-0001", rawData: "RAWDATA-FROM-FACE-SDK", organizationID: "org-1")
}

/// A TCP socket bound to a free port on 127.0.0.1, and that port.
func loopbackSocket() -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A loopback TCP port that refuses connections: bound but never listening, and held for the
/// object's lifetime so no other test can take it meanwhile.
final class RefusingPort {
    let port: UInt16
    private let fd: Int32

    init() {
        (fd, port) = loopbackSocket()
    }

    deinit { close(fd) }
}

/// Runs `body` and returns the WeChatPayError it throws (failing the test when it succeeds).
func expectFailure<T>(_ body: () async throws -> T, sourceLocation: SourceLocation = #_sourceLocation) async -> WeChatPayError? {
    do {
        let value = try await body()
        Issue.record("expected a WeChatPayError, got \(value)", sourceLocation: sourceLocation)
    } catch let error as WeChatPayError {
        return error
    } catch {
        Issue.record("expected a WeChatPayError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A loopback TCP port where connecting never completes: it listens with a backlog of 0 and one
/// connection nobody accepts fills it, so the kernel drops every further SYN (a host that has
/// gone dark, as far as a client can tell).
final class UnansweredPort {
    let port: UInt16
    private let listener: Int32
    private let filler: Int32

    init() throws {
        (listener, port) = loopbackSocket()
        guard listen(listener, 0) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    }

    deinit {
        close(filler)
        close(listener)
    }
}
