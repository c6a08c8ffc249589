import Foundation
import Synchronization
import Testing
@testable import HTTPServer
import SystemCalls

/// A blocking loopback client for exercising the server with exact bytes.
struct RawClient {
    let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard status == 0 else { throw SystemError(call: "connect", errno: errno) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until the peer closes or `count` responses' worth of text arrived (or 5 s pass).
    func receive(until predicate: (String) -> Bool = { _ in false }) -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            data += buffer[0..<count]
            if predicate(String(decoding: data, as: UTF8.self)) { break }
        }
        return String(decoding: data, as: UTF8.self)
    }

    func close() { Glibc.close(fd) }
}

@Suite struct HTTPServerTests {
    func echoServer(_ configure: (inout HTTPServer.Configuration) -> Void = { _ in }) throws -> (HTTPServer, UInt16) {
        var configuration = HTTPServer.Configuration()
        configure(&configuration)
        let server = HTTPServer(label: "test", configuration: configuration) { request, responder in
            responder.respond(HTTPResponse(status: 200, contentType: "text/plain", text: "\(request.method) \(request.path) \(request.body.count)"))
        }
        return (server, try server.listen(on: .tcp(host: "127.0.0.1", port: 0)).port)
    }

    @Test func answersKeepAliveRequestsInOrderOnOneConnection() throws {
        let (server, port) = try echoServer()
        defer { server.shutdown() }
        let client = try RawClient(port: port)
        defer { client.close() }
        client.send("GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\nConnection: close\r\n\r\n")
        let text = client.receive()
        let bodies = text.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix { $0 != "H" } }
        #expect(bodies == ["GET /a 0", "POST /b 3", "GET /c 0"])
        #expect(text.contains("Connection: close"))
    }

    /// The wire form: status line with its reason phrase (304 was sent as "304 Status"), the
    /// fields in order, preformatted ones after the others, then Date and Content-Length.
    @Test func responsesAreWrittenWithTheirReasonPhraseAndPreformattedFields() {
        var bytes: [UInt8] = []
        HTTPResponse(status: 304, headers: [("ETag", "W/\"1\"")]).write(into: &bytes, close: false, date: Array("D".utf8))
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 304 Not Modified\r\nETag: W/\"1\"\r\nDate: D\r\nContent-Length: 0\r\n\r\n")
        bytes = []
        var response = HTTPResponse(status: 200, preformattedFields: Array("Content-Type: a/b\r\n".utf8), body: Array("{}".utf8))
        response.headers.append(("X-One", "1"))
        response.write(into: &bytes, close: true, date: Array("D".utf8))
        #expect(String(decoding: bytes, as: UTF8.self)
            == "HTTP/1.1 200 OK\r\nX-One: 1\r\nContent-Type: a/b\r\nDate: D\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        bytes = []
        HTTPResponse(status: 503, headers: [("Retry-After", "5")]).write(into: &bytes, close: false, date: [])
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"))
    }

    @Test func garbageGets400AndTheConnectionIsClosed() throws {
        let (server, port) = try echoServer()
        defer { server.shutdown() }
        let client = try RawClient(port: port)
        defer { client.close() }
        client.send([0x16, 0x03, 0x01, 0x00, 0xFF, 0x00, 0x0D, 0x0A, 0x0D, 0x0A])
        let text = client.receive()
        #expect(text.hasPrefix("HTTP/1.1 400 "))
        #expect(text.hasSuffix("{\"error\":\"bad_request\"}"))
    }

    @Test func hugeHeaderGets431() throws {
        let (server, port) = try echoServer()
        defer { server.shutdown() }
        let client = try RawClient(port: port)
        defer { client.close() }
        client.send("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200_000) + "\r\n\r\n")
        #expect(client.receive().hasPrefix("HTTP/1.1 431 "))
    }

    @Test func stalledClientsAreCutOffWhileOthersAreServed() throws {
        let (server, port) = try echoServer { $0.requestTimeout = 0.5 }
        defer { server.shutdown() }
        let stalled = try (0..<50).map { _ in try RawClient(port: port) }
        for client in stalled { client.send("GET / HTTP/1.1\r\nHost: slow") }
        let started = Date()
        let fresh = try RawClient(port: port)
        fresh.send("GET /now HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(fresh.receive().hasSuffix("GET /now 0"))
        #expect(Date().timeIntervalSince(started) < 0.5)
        fresh.close()
        let answer = stalled[0].receive()
        #expect(answer.hasPrefix("HTTP/1.1 408 "))
        for client in stalled { client.close() }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(server.connectionCount == 0)
    }

    /// At the cap with every connection busy (mid-request), a new connection is closed at once.
    @Test func connectionCapClosesConnectionsBeyondItWhenAllAreBusy() throws {
        let (server, port) = try echoServer { $0.maximumConnections = 2 }
        defer { server.shutdown() }
        let first = try RawClient(port: port), second = try RawClient(port: port)
        first.send("GET /ok HTTP/1.1\r\n")
        second.send("GET /ok HTTP/1.1\r\n")
        Thread.sleep(forTimeInterval: 0.1)
        let third = try RawClient(port: port)
        third.send("GET / HTTP/1.1\r\n\r\n")
        #expect(third.receive() == "")
        first.send("Connection: close\r\n\r\n")
        #expect(first.receive().hasSuffix("GET /ok 0"))
        for client in [first, second, third] { client.close() }
    }

    /// At the cap, a new connection takes the place of the one idle the longest; connections
    /// beyond the per-address cap do the same among that address's connections.
    @Test func aNewConnectionBeyondTheCapShedsTheLongestIdle() throws {
        let events = Mutex<[ConnectionLimitEvent]>([])
        let (server, port) = try echoServer {
            $0.maximumConnections = 2
            $0.onLimit = { event in events.withLock { $0.append(event) } }
        }
        defer { server.shutdown() }
        let first = try RawClient(port: port)
        Thread.sleep(forTimeInterval: 0.05)
        let second = try RawClient(port: port)
        second.send("GET /keep HTTP/1.1\r\n\r\n")
        #expect(second.receive { $0.hasSuffix("GET /keep 0") }.hasSuffix("GET /keep 0"))
        let third = try RawClient(port: port)
        third.send("GET /new HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(third.receive().hasSuffix("GET /new 0"))
        #expect(first.receive() == "", "the longest-idle connection was closed to make room")
        second.send("GET /still HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(second.receive().hasSuffix("GET /still 0"), "the recently active one was kept")
        let seen = events.withLock { $0 }
        #expect(seen.count == 1 && seen.first?.cap == .total && seen.first?.action == .shedIdle && seen.first?.address == "127.0.0.1")
        for client in [first, second, third] { client.close() }
    }

    @Test func unixSocketIsCreatedWithItsModeAndRefusesToReplaceOtherFiles() throws {
        var template = Array((NSTemporaryDirectory() + "/http-unix-XXXXXX").utf8CString)
        let directory = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.sock"
        let server = HTTPServer(label: "unix") { _, responder in responder.respond(HTTPResponse(status: 204)) }
        try server.listen(on: .unix(path: path, mode: 0o640))
        var status = stat()
        #expect(lstat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o640)
        #expect((status.st_mode & S_IFMT) == S_IFSOCK)
        server.shutdown()

        // A stale socket from a crash is replaced; a regular file or symlink is not.
        let again = HTTPServer(label: "unix2") { _, responder in responder.respond(HTTPResponse(status: 204)) }
        try again.listen(on: .unix(path: path, mode: 0o600))
        again.shutdown()
        let regular = directory + "/file"
        _ = FileManager.default.createFile(atPath: regular, contents: Data("keep".utf8))
        #expect(throws: SystemError.self) { try again.listen(on: .unix(path: regular, mode: 0o600)) }
        symlink(regular, directory + "/link")
        #expect(throws: SystemError.self) { try again.listen(on: .unix(path: directory + "/link", mode: 0o600)) }
        #expect(try String(contentsOfFile: regular, encoding: .utf8) == "keep")
    }
}
