import Testing
@testable import HTTPServer

@Suite struct HTTPRequestParserTests {
    func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        HTTPRequestParser.parse(Array(text.utf8)[...], limits: limits)
    }

    func status(_ result: HTTPParseResult) -> Int? {
        if case .invalid(let status, _) = result { return status }
        return nil
    }

    @Test func parsesRequestLineHeadersAndBody() throws {
        let text = "PUT /v1/devices/d1/raw_data?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nX-Empty:\r\n\r\nhelloNEXT"
        guard case .request(let request, let consumed) = parse(text) else {
            Issue.record("not parsed")
            return
        }
        #expect(request.method == "PUT")
        #expect(request.path == "/v1/devices/d1/raw_data")
        #expect(request.query == "x=1")
        #expect(request.header("content-length") == "5")
        #expect(request.header("X-Empty") == "")
        #expect(request.body == Array("hello".utf8))
        #expect(consumed == text.utf8.count - 4)
        #expect(request.keepAlive)
    }

    @Test func incompleteHeadersAndBodiesAskForMore() {
        if case .incomplete = parse("GET / HTTP/1.1\r\nHost: x\r\n") {} else { Issue.record("expected incomplete") }
        if case .incomplete = parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc") {} else { Issue.record("expected incomplete") }
        if case .incomplete = parse("GE") {} else { Issue.record("expected incomplete") }
    }

    @Test func keepAliveFollowsTheVersionAndConnectionHeader() throws {
        guard case .request(let closing, _) = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
              case .request(let old, _) = parse("GET / HTTP/1.0\r\n\r\n"),
              case .request(let oldKept, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") else {
            Issue.record("not parsed")
            return
        }
        #expect(!closing.keepAlive)
        #expect(!old.keepAlive)
        #expect(oldKept.keepAlive)
    }

    @Test(arguments: [
        ("\u{01}\u{02}garbage\r\n\r\n", 400),
        ("GET /\r\n\r\n", 400),
        ("GET  / HTTP/1.1\r\n\r\n", 400),
        ("GET http://evil/ HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / HTTX/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\u{00}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\nb\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 413),
    ])
    func malformedRequestsAreRefusedWithTheRightStatus(text: String, expected: Int) {
        #expect(status(parse(text)) == expected)
    }

    @Test func oversizedHeaderBlockIs431EvenBeforeItEnds() {
        let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200_000)
        #expect(status(parse(big)) == 431)
        var limits = HTTPLimits()
        limits.maximumHeaderCount = 3
        #expect(status(parse("GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n", limits: limits)) == 431)
    }

    @Test func repeatedEqualContentLengthsAreAccepted() {
        if case .request(let request, _) = parse("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab") {
            #expect(request.body.count == 2)
        } else {
            Issue.record("not parsed")
        }
    }

    @Test func resumedScanFindsATerminatorSplitAcrossReads() {
        let whole = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let partial = Array(whole.prefix(whole.count - 2))
        guard case .incomplete(let scanned) = HTTPRequestParser.parse(partial[...]) else {
            Issue.record("expected incomplete")
            return
        }
        if case .request = HTTPRequestParser.parse(whole[...], scanFrom: scanned) {} else { Issue.record("terminator missed after resume") }
    }

    /// A seeded random-input run: the parser must return a result for every input and never trap.
    @Test func randomAndMutatedInputsNeverTrap() {
        var generator = SplitMix64(seed: 0xA17F0)
        let seeds = ["GET /v1/devices/d/authinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n",
                     "PUT /v1/devices/d/raw_data HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"].map { Array($0.utf8) }
        var parsed = 0
        for round in 0..<20_000 {
            var input = seeds[round % seeds.count]
            for _ in 0..<Int(generator.next() % 6) {
                let position = Int(generator.next() % UInt64(input.count + 1))
                switch generator.next() % 4 {
                case 0 where position < input.count: input[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1: input.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                case 2 where position < input.count: input.remove(at: position)
                default: input = Array(input.prefix(position))
                }
            }
            if case .request = HTTPRequestParser.parse(input[...]) { parsed += 1 }
        }
        #expect(parsed > 0, "some mutations stay valid")
    }
}

/// A small deterministic generator, so the random test replays identically.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
