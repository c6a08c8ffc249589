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
