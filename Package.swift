// swift-tools-version:6.0
import PackageDescription

/// authinfod: keeps WeChat Pay face-pay `authinfo` credentials fresh, cached and served.
///
/// Targets, bottom up:
/// - `CSQLite`, `COpenSSL`: system C libraries (libsqlite3, OpenSSL libcrypto and libssl); `CLinux`: epoll,
///   eventfd, mallopt and the libFuzzer driver, which the Glibc module does not export.
/// - `SystemCalls`: the one layer over raw calls: EINTR retry, `SystemError` naming the call, an
///   owning `FileDescriptor`, the `sockaddr_un` builder, the monotonic clock.
/// - `HTTPServer`: a small HTTP/1.1 server on non-blocking sockets and one epoll thread.
/// - `WeChatPay`: the APIv3 client (signing, answer verification, certificates, transport).
/// - `WeChatPaySimulator`: a loopback stand-in for the gateway, for tests and the demo.
/// - `AuthInfoDaemon`: configuration and the daemon itself.
/// - `authinfod`: the command line.
/// - `authinfod-bench`, `authinfod-fuzz`: benchmarks and soak; fuzz targets (libFuzzer with
///   `make fuzz`, a corpus replay otherwise).
let package = Package(
    name: "authinfod",
    products: [
        .executable(name: "authinfod", targets: ["authinfod"]),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(name: "CLinux"),
        .target(name: "SystemCalls", dependencies: ["CLinux"]),
        .target(name: "HTTPServer", dependencies: ["CLinux", "COpenSSL", "SystemCalls"]),
        .target(name: "WeChatPay", dependencies: ["COpenSSL", "SystemCalls"]),
        .target(name: "WeChatPaySimulator", dependencies: ["WeChatPay", "HTTPServer", "SystemCalls"]),
        .target(name: "AuthInfoDaemon", dependencies: ["WeChatPay", "CSQLite", "HTTPServer", "CLinux", "SystemCalls"]),
        .executableTarget(
            name: "authinfod",
            dependencies: ["AuthInfoDaemon", "WeChatPay", "WeChatPaySimulator", "CLinux", "SystemCalls"]
        ),
        .executableTarget(
            name: "authinfod-bench",
            dependencies: ["AuthInfoDaemon", "HTTPServer", "WeChatPay", "WeChatPaySimulator"],
            exclude: ["wechatpayv3-client.py", "refresh-floor.c", "publish-floor.c"]
        ),
        .executableTarget(name: "authinfod-fuzz", dependencies: ["AuthInfoDaemon", "HTTPServer", "WeChatPay", "CLinux"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "SystemCalls"]),
        .testTarget(
            name: "WeChatPayTests",
            dependencies: ["WeChatPay", "WeChatPaySimulator", "COpenSSL"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "AuthinfodTests",
            dependencies: ["AuthInfoDaemon", "HTTPServer", "WeChatPay", "WeChatPaySimulator", "SystemCalls", "COpenSSL"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
