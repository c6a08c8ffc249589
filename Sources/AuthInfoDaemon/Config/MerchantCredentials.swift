import FoundationEssentials
import WeChatPay

/// The merchant's secrets and keys, loaded from the files the configuration names, and the
/// `ClientConfiguration` they make.
public struct MerchantCredentials: Sendable {
    public let signer: RequestSigner
    public let publicKey: WeChatPayPublicKey?
    public let apiV3Key: SecretBytes?

    static let maximumKeyFileBytes = 64 * 1024

    /// Reads and parses every key file of `merchant`, refusing any that is missing, unreadable,
    /// accessible to other users (private key, APIv3 key), or not the expected PEM.
    public static func load(_ merchant: Configuration.Merchant, file: String) throws(ConfigError) -> MerchantCredentials {
        func read(_ path: String, _ key: String, private isPrivate: Bool) throws(ConfigError) -> [UInt8] {
            do {
                return try SecretFile.read(path, maximumBytes: maximumKeyFileBytes, private: isPrivate)
            } catch {
                throw ConfigError(file: file, key: "merchant.\(key)", message: error.description)
            }
        }
        let privateKey: RSAPrivateKey
        do {
            privateKey = try RSAPrivateKey(pem: String(decoding: try read(merchant.privateKeyFile, "private_key_file", private: true), as: UTF8.self))
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: file, key: "merchant.private_key_file",
                              message: "\(merchant.privateKeyFile) is not a usable merchant key (apiclient_key.pem): \((error as? CryptoError)?.reason ?? "\(error)")")
        }
        var publicKey: WeChatPayPublicKey?
        if let id = merchant.publicKeyID, let path = merchant.publicKeyFile {
            do {
                publicKey = WeChatPayPublicKey(id: id, key: try RSAPublicKey(pem: String(decoding: try read(path, "wechatpay_public_key_file", private: false), as: UTF8.self)))
            } catch let error as ConfigError {
                throw error
            } catch {
                throw ConfigError(file: file, key: "merchant.wechatpay_public_key_file",
                                  message: "\(path) is not the WeChat Pay public key (pub_key.pem, BEGIN PUBLIC KEY): \((error as? CryptoError)?.reason ?? "\(error)")")
            }
        }
        var apiV3Key: SecretBytes?
        if let path = merchant.apiV3KeyFile {
            var bytes = try read(path, "apiv3_key_file", private: true)
            while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 { bytes.removeLast() }
            defer { for index in bytes.indices { bytes[index] = 0 } }
            guard bytes.count == 32, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ConfigError(file: file, key: "merchant.apiv3_key_file",
                                  message: "\(path) must hold the 32-character APIv3 key set on the merchant platform (found \(bytes.count) characters)")
            }
            apiV3Key = SecretBytes(bytes)
        }
        return MerchantCredentials(signer: RequestSigner(mchid: merchant.mchid, serialNumber: merchant.serialNumber, privateKey: privateKey),
                                   publicKey: publicKey, apiV3Key: apiV3Key)
    }

    /// The APIv3 client configuration for `configuration`'s gateway settings.
    public func clientConfiguration(_ configuration: Configuration) -> ClientConfiguration {
        var client = ClientConfiguration(signer: signer, publicKey: publicKey, apiV3Key: apiV3Key,
                                         baseURL: configuration.api.baseURL, backupBaseURL: configuration.api.backupBaseURL)
        client.timeout = configuration.api.timeout
        client.trustedCertificatesFile = configuration.api.trustedCertificatesFile
        return client
    }
}

/// Bearer tokens of TCP clients, from the config or a token file.
public enum TCPClientToken {
    /// The client's token; token files must be private. Tokens need at least 16 visible ASCII
    /// characters so they cannot be guessed.
    public static func load(_ client: Configuration.TCPClient, key: String, file: String) throws(ConfigError) -> SecretBytes {
        var bytes: [UInt8]
        switch client.tokenSource {
        case .inline:
            bytes = Array((client.inlineToken ?? "").utf8)
        case .file(let path):
            do {
                bytes = try SecretFile.read(path, maximumBytes: 4096, private: true)
            } catch {
                throw ConfigError(file: file, key: "\(key).token_file", message: error.description)
            }
            while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 { bytes.removeLast() }
        }
        defer { for index in bytes.indices { bytes[index] = 0 } }
        guard bytes.count >= 16, bytes.count <= 512, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            let field = client.tokenSource == .inline ? "token" : "token_file"
            throw ConfigError(file: file, key: "\(key).\(field)", message: "client \(client.name): a token must be 16 to 512 visible ASCII characters without spaces")
        }
        return SecretBytes(bytes)
    }
}
