import Foundation
import HTTPServer
import WeChatPay
import WeChatPaySimulator

/// Benchmarks for authinfod (`make bench`). Not part of the product.
///
/// `authinfod-bench client [--calls N]`: CPU time per signed, verified authinfo call against a
/// simulator running in a child process (so only the client's CPU is counted), next to the bare
/// RSA-2048 sign cost on this machine.
/// `authinfod-bench daemon [--devices N]`: the real `authinfod run` with N devices against that
/// simulator: fill rate, CPU per refresh, RSS, and a restart with the gateway down; `--tls`: the
/// simulator speaks https (its certificate trusted through `api.ca_file`), and the gateway
/// connections opened per 1,000 refreshes are counted; `--floor-client F`: also `refresh-floor`
/// (built by `make bench` from refresh-floor.c) against the same simulator; `--openssl-around`:
/// `openssl speed` sign measured right before and after the fill (and the floor);
/// `--publish-floor F`: after the restart, `publish-floor` (built by `make bench` from
/// publish-floor.c) writes the same number of files into a new folder, the limit of READY.
/// `authinfod-bench sign [--calls N]`: the sign and verify paths alone (compare `openssl speed rsa2048`).
/// `authinfod-bench report [--devices N] [--large N] [--python-client F] [--floor-client F]
/// [--publish-floor F] [--openssl-speed LINE] [--static-binary F]`: `make bench`, every figure beside its reference and target (see `BenchReport`).
/// `authinfod-bench soak [--devices N] [--lifetime S] [--minutes M]`: see `SoakBench`.
/// `authinfod-bench http [--seconds S] [--rounds R] [--tls]`: GET authinfo over TCP (or TLS) with
/// wrk, next to nginx; plain, also the exchange's latency next to the direct gateway call.
/// `authinfod-bench simulator --merchant-key-file F --out F`: the gateway simulator as a process.
/// `authinfod-bench gateway --site DIR`: the same with a new merchant key, for `make systemd-check`.

func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// The authinfod under test: `$AUTHINFOD_BINARY` (make bench sets the static build, the one
/// install and deb ship), else the one built beside this benchmark.
func daemonBinary() -> String {
    if let path = ProcessInfo.processInfo.environment["AUTHINFOD_BINARY"], !path.isEmpty { return path }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("authinfod").path
}

func option(_ name: String, _ arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

/// CPU seconds of one RSA-2048 PKCS#1 v1.5 SHA-256 signature of a 300-byte message, over `calls`.
func signCPUSeconds(_ key: RSAPrivateKey, calls: Int) throws -> Double {
    let message = Array(String(repeating: "m", count: 300).utf8)
    for _ in 0..<50 { _ = try key.sign(message) }
    let start = processCPUSeconds()
    for _ in 0..<calls { _ = try key.sign(message) }
    return (processCPUSeconds() - start) / Double(calls)
}

/// The sign and verify paths alone (CPU per call, best of three rounds of `calls`), for
/// comparison with `openssl speed rsa2048` in the same run.
func signAndVerifyCPU(calls: Int) throws -> (sign: Double, verify: Double) {
    let key = try RSAPrivateKey(generatingBits: 2048)
    let publicKey = try key.publicKey()
    let message = Array(String(repeating: "m", count: 300).utf8)
    let signature = try key.sign(message)
    var best = (sign: Double.infinity, verify: Double.infinity)
    for _ in 0..<3 {
        best.sign = min(best.sign, try signCPUSeconds(key, calls: calls))
        let start = processCPUSeconds()
        for _ in 0..<(calls * 5) where !publicKey.isValidSignature(signature, for: message) { throw DaemonBench.BenchFailure(description: "verify failed") }
        best.verify = min(best.verify, (processCPUSeconds() - start) / Double(calls * 5))
    }
    return best
}

/// `openssl speed rsa2048`'s sign and verify seconds from its result line
/// (`rsa 2048 bits 0.000428s 0.000025s 2334.6 40393.9`), which `make bench` passes in.
func opensslSpeed(_ line: String?) -> (sign: Double, verify: Double)? {
    guard let line else { return nil }
    let seconds = line.split(separator: " ").filter { $0.hasSuffix("s") }.compactMap { Double($0.dropLast()) }
    return seconds.count >= 2 ? (seconds[0], seconds[1]) : nil
}

/// One RSA-2048 sign by `openssl speed -seconds 2 rsa2048`, run now: the reference a CPU figure
/// is held against, measured in the same minutes as the figure.
func opensslSignNow() throws -> Double {
    let text = try DaemonBench.output(of: "/usr/bin/env", ["openssl", "speed", "-seconds", "2", "rsa2048"], failure: "openssl speed rsa2048 failed")
    guard let speed = opensslSpeed(text.split(separator: "\n").last { $0.hasPrefix("rsa 2048") }.map(String.init)) else {
        throw DaemonBench.BenchFailure(description: "openssl speed rsa2048 printed no result line")
    }
    return speed.sign
}

let mchid = "1900000109"
let serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
let arguments = Array(CommandLine.arguments.dropFirst())

do {
switch arguments.first {
case "simulator":
    guard let keyFile = option("--merchant-key-file", arguments), let out = option("--out", arguments) else {
        FileHandle.standardError.write(Data("usage: authinfod-bench simulator --merchant-key-file F --out F\n".utf8))
        exit(2)
    }
    let merchantKey = try RSAPublicKey(pem: String(contentsOfFile: keyFile, encoding: .utf8))
    // `--tls-ca F`: serve https with a new certificate for localhost, written to F for the client to trust.
    var tls: TLSServerContext?
    if let caFile = option("--tls-ca", arguments) {
        let key = try RSAPrivateKey(generatingBits: 2048)
        let certificate = try X509Certificate.selfSigned(key: key, serialNumber: "0C", commonName: "localhost",
                                                         notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(86_400))
        try certificate.pem.write(toFile: caFile, atomically: true, encoding: .utf8)
        tls = try Array(key.pkcs8PEM().utf8).withUnsafeBytes { try TLSServerContext(certificateChainFile: caFile, privateKey: $0) }
    }
    let simulator = try WeChatPaySimulator(merchant: .init(mchid: mchid, serialNumber: serial, publicKey: merchantKey), tls: tls)
    let info = "\(simulator.port)\n\(simulator.credentials.publicKeyID)\n\(try simulator.credentials.publicKeyPEM())"
    try info.write(toFile: out, atomically: true, encoding: .utf8)
    while true { sleep(3600) }

case "gateway":
    // `--site DIR`: a simulator for a check outside this process (make systemd-check): a new
    // merchant key in DIR/apiclient_key.pem, the gateway's public key in DIR/pub_key.pem, and
    // DIR/gateway.env with PORT, MCHID, SERIAL_NO and PUBLIC_KEY_ID for a config. Runs until killed.
    guard let directory = option("--site", arguments) else {
        FileHandle.standardError.write(Data("usage: authinfod-bench gateway --site DIR\n".utf8))
        exit(2)
    }
    let merchantKey = try RSAPrivateKey(generatingBits: 2048)
    let simulator = try WeChatPaySimulator(merchant: .init(mchid: mchid, serialNumber: serial, publicKey: merchantKey.publicKey()))
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: directory + "/apiclient_key.pem", contents: Data(try merchantKey.pkcs8PEM().utf8), attributes: [.posixPermissions: 0o600])
    try simulator.credentials.publicKeyPEM().write(toFile: directory + "/pub_key.pem", atomically: true, encoding: .utf8)
    let environment = "PORT=\(simulator.port)\nMCHID=\(mchid)\nSERIAL_NO=\(serial)\nPUBLIC_KEY_ID=\(simulator.credentials.publicKeyID)\n"
    try environment.write(toFile: directory + "/gateway.env", atomically: true, encoding: .utf8)
    while true { sleep(3600) }

case "client":
    let calls = Int(option("--calls", arguments) ?? "") ?? 2000
    // `--gateway DIR`: a simulator already running with DIR/apiclient_key.pem as the merchant
    // key, its port and key in DIR/gateway (for profilers that cannot follow a child process).
    let given = option("--gateway", arguments)
    let directory = given ?? NSTemporaryDirectory() + "/authinfod-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { if given == nil { try? FileManager.default.removeItem(atPath: directory) } }
    let merchantKey = given == nil ? try RSAPrivateKey(generatingBits: 2048)
        : try RSAPrivateKey(pem: String(contentsOfFile: directory + "/apiclient_key.pem", encoding: .utf8))
    try merchantKey.publicKeyPEM().write(toFile: directory + "/merchant.pub", atomically: true, encoding: .utf8)

    let child = Process()
    if given == nil {
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["simulator", "--merchant-key-file", directory + "/merchant.pub", "--out", directory + "/gateway"]
        try child.run()
    }
    defer { if given == nil { child.terminate() } }
    var gateway: [String] = []
    for _ in 0..<200 where gateway.count < 3 {
        gateway = ((try? String(contentsOfFile: directory + "/gateway", encoding: .utf8)) ?? "").components(separatedBy: "\n")
        if gateway.count < 3 { usleep(50_000) }
    }
    let publicKey = WeChatPayPublicKey(id: gateway[1], key: try RSAPublicKey(pem: gateway[2...].joined(separator: "\n")))
    let client = WeChatPayClient(configuration: ClientConfiguration(
        signer: RequestSigner(mchid: mchid, serialNumber: serial, privateKey: merchantKey),
        publicKey: publicKey, apiV3Key: nil, baseURL: URL(string: "http://127.0.0.1:\(gateway[0])")!))
    let request = AuthInfoRequest(spAppID: "wx8888888888888888", subAppID: nil, subMchID: "1900000999", deviceID: "bench-1",
                                  rawData: String(repeating: "R", count: 512), organizationID: "org-1")

    let message = Array(String(repeating: "m", count: 300).utf8)
    let signCost = try signCPUSeconds(merchantKey, calls: calls)

    let verifyKey = try merchantKey.publicKey()
    let signature = try merchantKey.sign(message)
    var start = processCPUSeconds()
    for _ in 0..<calls { _ = verifyKey.isValidSignature(signature, for: message) }
    let verifyCost = (processCPUSeconds() - start) / Double(calls)

    for _ in 0..<50 { _ = try await client.authinfo(request) }
    start = processCPUSeconds()
    let wallStart = Date()
    for _ in 0..<calls { _ = try await client.authinfo(request) }
    let callCost = (processCPUSeconds() - start) / Double(calls)
    let wall = Date().timeIntervalSince(wallStart)

    func ms(_ seconds: Double) -> String { String(format: "%.3f ms", seconds * 1000) }
    print("calls:                          \(calls) sequential, loopback, simulator in a separate process")
    print("RSA-2048 PKCS#1 v1.5 sign:      \(ms(signCost)) CPU")
    print("RSA-2048 verify:                \(ms(verifyCost)) CPU")
    print("signed + verified authinfo call: \(ms(callCost)) CPU (client process), \(String(format: "%.2f", callCost / signCost))× the sign cost")
    print("wall time per call:             \(ms(wall / Double(calls)))")

case "sign":
    let calls = Int(option("--calls", arguments) ?? "") ?? 4000
    let cost = try signAndVerifyCPU(calls: calls)
    print(String(format: "authinfod sign %.4f ms, verify %.4f ms (CPU per call, best of 3 × %d)", cost.sign * 1000, cost.verify * 1000, calls))

case "http":
    try HTTPBench.run(seconds: Int(option("--seconds", arguments) ?? "") ?? 10, rounds: Int(option("--rounds", arguments) ?? "") ?? 3,
                      tls: arguments.contains("--tls"))

case "report":
    try BenchReport.run(devices: Int(option("--devices", arguments) ?? "") ?? 10_000, large: Int(option("--large", arguments) ?? "") ?? 100_000,
                        pythonClient: option("--python-client", arguments),
                        floorClient: option("--floor-client", arguments), publishFloor: option("--publish-floor", arguments),
                        openssl: opensslSpeed(option("--openssl-speed", arguments)),
                        staticBinary: option("--static-binary", arguments))

case "soak":
    try SoakBench.run(devices: Int(option("--devices", arguments) ?? "") ?? 1000, lifetime: Int(option("--lifetime", arguments) ?? "") ?? 20,
                      minutes: Double(option("--minutes", arguments) ?? "") ?? 10,
                      reloadEvery: Double(option("--reload-every", arguments) ?? "") ?? 60)

case "daemon":
    try DaemonBench.run(devices: Int(option("--devices", arguments) ?? "") ?? 10_000, floorClient: option("--floor-client", arguments),
                        publishFloor: option("--publish-floor", arguments), tls: arguments.contains("--tls"), signReference: arguments.contains("--openssl-around") ? { try opensslSignNow() } : nil)

default:
    FileHandle.standardError.write(Data("usage: authinfod-bench report [--devices N] [--large N] [--python-client F] [--floor-client F] [--publish-floor F] [--openssl-speed LINE] [--static-binary F] | client [--calls N] [--gateway DIR] | daemon [--devices N] [--floor-client F] [--publish-floor F] [--tls] [--openssl-around] | sign [--calls N] | soak [--devices N] [--lifetime S] [--minutes M] [--reload-every S] | http [--seconds S] [--rounds R] [--tls] | simulator --merchant-key-file F --out F | gateway --site DIR\n".utf8))
    exit(2)
}
} catch {
    FileHandle.standardError.write(Data("authinfod-bench: \(error)\n".utf8))
    exit(1)
}
