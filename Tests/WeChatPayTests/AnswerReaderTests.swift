import Testing
@testable import WeChatPay

/// The gateway-answer reader on long answers arriving in many reads.
@Suite struct AnswerReaderTests {
    /// A chunked body of 100 KB in 100-byte chunks, read 1,000 bytes at a time: past 64 KB the
    /// reader compacts its buffer while a chunk-size line is half read. It used to resume its
    /// search for that line's end at the old position, after the compaction moved the bytes,
    /// and could skip the line's end.
    @Test func aLongChunkedAnswerReadInPiecesIsReadWhole() throws {
        var stream = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var body: [UInt8] = []
        for index in 0..<1_000 {
            let chunk = [UInt8](repeating: UInt8(ascii: "a") + UInt8(index % 26), count: 100)
            body += chunk
            stream += Array("64\r\n".utf8) + chunk + [13, 10]
        }
        stream += Array("0\r\n\r\n".utf8)
        for step in [1_000, 333, 7] {
            let pieces = stride(from: 0, to: stream.count, by: step).map { Array(stream[$0..<min($0 + step, stream.count)]) }
            let result = HTTPAnswerReplay.read(chunks: pieces, maximumBodyBytes: 1 << 20)
            guard case .success(let read) = result else {
                Issue.record("reads of \(step) bytes: \(result)")
                continue
            }
            #expect(read.answer.body == body, "reads of \(step) bytes")
        }
    }
}

/// The gateway loop's reader: it never waits, so it must tell an answer still arriving from one
/// that is complete or broken, from whatever prefix of it has come.
@Suite struct ReceivedAnswerTests {
    static func parse(_ bytes: [UInt8], ended: Bool) -> Result<(answer: GatewayAnswer, reusable: Bool), TransportFailure>? {
        ReceivedAnswer.parse(bytes, ended: ended, host: "test", maximumBodyBytes: 1 << 20)
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nRequest-ID: R1\r\n\r\n{\"a\":\"bcd\"}",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n6\r\n\"bcd\"}\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}",
    ])
    func everyPrefixWaitsAndTheWholeAnswerIsComplete(_ text: String) throws {
        let bytes = Array(text.utf8)
        for end in 0..<bytes.count {
            #expect(Self.parse(Array(bytes[..<end]), ended: false) == nil, "after \(end) of \(bytes.count) bytes")
        }
        guard case .success(let read) = Self.parse(bytes, ended: false) else {
            Issue.record("the whole answer was not read: \(String(describing: Self.parse(bytes, ended: false)))")
            return
        }
        #expect(read.answer.status == 200)
        #expect(read.answer.body == Array("{\"a\":\"bcd\"}".utf8))
        #expect(read.reusable)
    }

    @Test func aBodyReadToTheEndIsCompleteOnlyWhenTheStreamEnds() throws {
        let bytes = Array("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\":1}".utf8)
        #expect(Self.parse(bytes, ended: false) == nil)
        guard case .success(let read) = Self.parse(bytes, ended: true) else {
            Issue.record("not read at the end of the stream")
            return
        }
        #expect(read.answer.body == Array("{\"a\":1}".utf8))
        #expect(!read.reusable)
    }

    @Test func anAnswerCutShortByTheEndOfTheStreamIsAFailure() throws {
        let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\"".utf8)
        guard case .failure(let failure) = Self.parse(bytes, ended: true) else {
            Issue.record("a cut answer was not a failure")
            return
        }
        #expect(failure.stage == .exchange && failure.answerBegan)
        // Nothing at all before the end: the connection closed before answering, which a
        // kept-alive connection may do (the request is then re-sent, signed afresh).
        guard case .failure(let silent) = Self.parse([], ended: true) else {
            Issue.record("an empty stream was not a failure")
            return
        }
        #expect(silent.stage == .exchange && !silent.answerBegan)
    }

    @Test func aBrokenAnswerFailsWithoutWaitingForTheRest() throws {
        for text in ["XTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nno colon here\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"] {
            guard case .failure(let failure) = Self.parse(Array(text.utf8), ended: false) else {
                Issue.record("\(text.debugDescription) was not refused")
                continue
            }
            #expect(failure.reason.contains("invalid HTTP answer"), "\(failure.reason)")
        }
    }
}
