import COpenSSL

/// Owns one OpenSSL memory BIO, for reading PEM from bytes or writing PEM out.
final class MemoryBIO {
    let bio: OpaquePointer

    /// An empty, writable memory BIO.
    init() throws(CryptoError) {
        guard let bio = BIO_new(BIO_s_mem()) else { throw .openSSL("BIO_new") }
        self.bio = bio
    }

    /// A memory BIO holding a copy of `bytes`, ready to be read.
    convenience init(copying bytes: [UInt8]) throws(CryptoError) {
        try self.init()
        let written = bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
        guard written == Int32(bytes.count) else { throw .openSSL("BIO_write") }
    }

    deinit { BIO_free(bio) }

    /// Everything written to the BIO so far.
    func contents() -> [UInt8] {
        var data: UnsafeMutablePointer<CChar>?
        let length = authinfod_bio_get_mem_data(bio, &data)
        guard let data, length > 0 else { return [] }
        return data.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    /// The BIO's contents as a string (PEM is ASCII).
    func string() -> String { String(decoding: contents(), as: UTF8.self) }
}
