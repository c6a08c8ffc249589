import FoundationEssentials

/// The answer of `GET /v3/certificates`, and turning it into verified X.509 certificates.
struct CertificateList: Codable, Sendable {
    struct Item: Codable, Sendable {
        struct Encrypted: Codable, Sendable {
            let algorithm: String
            let nonce: String
            let associatedData: String?
            let ciphertext: String

            enum CodingKeys: String, CodingKey {
                case algorithm, nonce, ciphertext, associatedData = "associated_data"
            }
        }

        let serialNo: String
        let effectiveTime: String?
        let expireTime: String?
        let encryptCertificate: Encrypted

        enum CodingKeys: String, CodingKey {
            case serialNo = "serial_no", effectiveTime = "effective_time", expireTime = "expire_time"
            case encryptCertificate = "encrypt_certificate"
        }
    }

    let data: [Item]

    /// Decrypts every item with the APIv3 key and parses it; an item whose algorithm, tag,
    /// certificate or serial does not check out makes the whole answer malformed.
    func certificates(apiV3Key: SecretBytes) throws(WeChatPayAnswerProblem) -> [X509Certificate] {
        var result: [X509Certificate] = []
        for item in data {
            let wrapped = item.encryptCertificate
            guard wrapped.algorithm == "AEAD_AES_256_GCM" else {
                throw WeChatPayAnswerProblem("certificate \(item.serialNo) uses unsupported algorithm \(wrapped.algorithm)")
            }
            guard let ciphertext = Data(base64Encoded: wrapped.ciphertext) else {
                throw WeChatPayAnswerProblem("certificate \(item.serialNo) ciphertext is not Base64")
            }
            let plaintext: [UInt8]
            do {
                plaintext = try AESGCM.open(Array(ciphertext), key: apiV3Key, nonce: Array(wrapped.nonce.utf8),
                                            associatedData: Array((wrapped.associatedData ?? "").utf8))
            } catch {
                throw WeChatPayAnswerProblem("certificate \(item.serialNo) does not decrypt with merchant.apiv3_key_file (\(error.reason))")
            }
            let certificate: X509Certificate
            do {
                certificate = try X509Certificate(pem: String(decoding: plaintext, as: UTF8.self))
            } catch {
                throw WeChatPayAnswerProblem("certificate \(item.serialNo) is not a valid X.509 certificate (\(error.reason))")
            }
            guard certificate.serialNumber == item.serialNo.uppercased() else {
                throw WeChatPayAnswerProblem("certificate listed as \(item.serialNo) has serial \(certificate.serialNumber)")
            }
            result.append(certificate)
        }
        return result
    }
}
