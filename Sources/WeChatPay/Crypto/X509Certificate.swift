import COpenSSL
import FoundationEssentials

/// A parsed X.509 certificate: its serial number, validity window and RSA public key.
///
/// Only the fields authinfod needs are read out; the `X509` handle is freed once they are.
public struct X509Certificate: Sendable {
    /// Serial number as upper-case hex, no leading `0x` (how WeChat Pay names platform certificates).
    public let serialNumber: String
    public let notBefore: Date
    public let notAfter: Date
    public let publicKey: RSAPublicKey
    /// The certificate in PEM, as parsed.
    public let pem: String

    /// Parses one PEM certificate (`BEGIN CERTIFICATE`).
    public init(pem: String) throws(CryptoError) {
        let bio = try MemoryBIO(copying: Array(pem.utf8))
        guard let certificate = authinfod_read_x509(bio.bio) else {
            throw CryptoError(function: "PEM_read_bio_X509", reason: "not a PEM X.509 certificate: \(drainErrorQueue() ?? "no detail")")
        }
        defer { X509_free(certificate) }
        serialNumber = try Self.serialHex(certificate)
        notBefore = try Self.date(X509_get0_notBefore(certificate), "notBefore")
        notAfter = try Self.date(X509_get0_notAfter(certificate), "notAfter")
        guard let key = X509_get_pubkey(certificate) else { throw .openSSL("X509_get_pubkey") }
        publicKey = try RSAPublicKey(owning: key)
        self.pem = pem
    }

    /// Whether `date` lies inside the certificate's validity window.
    public func isValid(at date: Date) -> Bool { notBefore <= date && date <= notAfter }

    /// Issues a self-signed certificate for `key` (the simulator's platform certificate).
    public static func selfSigned(
        key: RSAPrivateKey, serialNumber: String, commonName: String, notBefore: Date, notAfter: Date
    ) throws(CryptoError) -> X509Certificate {
        guard let certificate = X509_new() else { throw .openSSL("X509_new") }
        defer { X509_free(certificate) }
        guard X509_set_version(certificate, 2) == 1 else { throw .openSSL("X509_set_version") }
        var bignum: OpaquePointer?
        guard BN_hex2bn(&bignum, serialNumber) > 0, let bignum else { throw .openSSL("BN_hex2bn") }
        defer { BN_free(bignum) }
        guard BN_to_ASN1_INTEGER(bignum, X509_get_serialNumber(certificate)) != nil else {
            throw .openSSL("BN_to_ASN1_INTEGER")
        }
        guard ASN1_TIME_set(X509_getm_notBefore(certificate), time_t(notBefore.timeIntervalSince1970)) != nil,
              ASN1_TIME_set(X509_getm_notAfter(certificate), time_t(notAfter.timeIntervalSince1970)) != nil
        else { throw .openSSL("ASN1_TIME_set") }
        guard X509_set_pubkey(certificate, key.key) == 1 else { throw .openSSL("X509_set_pubkey") }
        let name = X509_get_subject_name(certificate)
        let added = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0)
        guard added == 1, X509_set_issuer_name(certificate, name) == 1 else { throw .openSSL("X509_NAME_add_entry_by_txt") }
        guard X509_sign(certificate, key.key, EVP_sha256()) > 0 else { throw .openSSL("X509_sign") }
        let bio = try MemoryBIO()
        guard PEM_write_bio_X509(bio.bio, certificate) == 1 else { throw .openSSL("PEM_write_bio_X509") }
        return try X509Certificate(pem: bio.string())
    }

    private static func serialHex(_ certificate: OpaquePointer) throws(CryptoError) -> String {
        guard let bignum = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nil) else {
            throw .openSSL("ASN1_INTEGER_to_BN")
        }
        defer { BN_free(bignum) }
        guard let hex = BN_bn2hex(bignum) else { throw .openSSL("BN_bn2hex") }
        defer { authinfod_openssl_free(hex) }
        return String(cString: hex).uppercased()
    }

    private static func date(_ time: UnsafePointer<ASN1_TIME>?, _ field: String) throws(CryptoError) -> Date {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else {
            throw CryptoError(function: "ASN1_TIME_to_tm", reason: "unreadable \(field) time")
        }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }
}
