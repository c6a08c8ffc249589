import Foundation
import Synchronization
import Testing
@testable import WeChatPay

@Suite struct CryptoTests {
    @Test func officialTestKeySignsTheJSAPIMessageToThePublishedSignature() throws {
        let message = try Fixtures.text("jsapi-message.txt")
        let expected = try Fixtures.text("jsapi-signature.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        let signature = try Fixtures.merchantKey.sign(Array(message.utf8))
        #expect(Data(signature).base64EncodedString() == expected)
    }

    @Test func pkcs8AndPKCS1FormsOfOneKeySignIdentically() throws {
        let pkcs8 = try RSAPrivateKey(pem: Fixtures.merchantKey.pkcs8PEM())
        let message = Array("hello\n".utf8)
        #expect(try pkcs8.sign(message) == Fixtures.merchantKey.sign(message))
        #expect(try Fixtures.merchantKey.pkcs8PEM().hasPrefix("-----BEGIN PRIVATE KEY-----"))
    }

    @Test func signaturesVerifyOnlyForTheirMessageAndKey() throws {
        let message = Array("TS\nNONCE\nBODY\n".utf8)
        let signature = try Fixtures.merchantKey.sign(message)
        let publicKey = try Fixtures.merchantKey.publicKey()
        #expect(publicKey.isValidSignature(signature, for: message))
        #expect(!publicKey.isValidSignature(signature, for: Array("TS\nNONCE\nBODY!\n".utf8)))
        #expect(!publicKey.isValidSignature([1, 2, 3], for: message))
        let other = try Fixtures.gatewayCredentials.platformKey.publicKey()
        #expect(!other.isValidSignature(signature, for: message))
    }

    /// Signing and verifying reuse set-up contexts: from many threads at once every signature is
    /// the deterministic one, and a context that just refused a bad signature still verifies.
    @Test func pooledContextsSignAndVerifyCorrectlyFromManyThreadsAtOnce() throws {
        let key = Fixtures.merchantKey
        let publicKey = try key.publicKey()
        let message = Array("concurrent\n".utf8)
        let expected = try key.sign(message)
        let forged = [expected[0] ^ 1] + expected.dropFirst()
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<25 {
                let good = (try? key.sign(message)) == expected && publicKey.isValidSignature(expected, for: message)
                let bad = publicKey.isValidSignature(forged, for: message) || publicKey.isValidSignature([1, 2, 3], for: message)
                if !good || bad { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(publicKey.isValidSignature(expected, for: message))
    }

    @Test func garbageAndTruncatedPEMAreRefusedWithAReason() {
        #expect(throws: CryptoError.self) { try RSAPrivateKey(pem: "not a key") }
        #expect(throws: CryptoError.self) { try RSAPublicKey(pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n") }
        do {
            _ = try RSAPrivateKey(pem: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
            Issue.record("truncated key accepted")
        } catch {
            #expect(error.reason.contains("not a PEM private key"))
        }
    }

    @Test func smallRSAKeysAreRefused() throws {
        let small = try RSAPrivateKey(generatingBits: 1024)
        #expect(throws: CryptoError.self) { try RSAPublicKey(pem: small.publicKeyPEM()) }
        #expect(throws: CryptoError.self) { try RSAPrivateKey(pem: small.pkcs8PEM()) }
    }

    @Test func aesGCMRoundTripsAndRefusesTamperingAndWrongKeys() throws {
        let key = SecretBytes(Array("0123456789abcdefghijklmnopqrstuv".utf8))
        let nonce = Array("abcdefghijkl".utf8)
        let sealed = try AESGCM.seal(Array("certificate pem".utf8), key: key, nonce: nonce, associatedData: Array("certificate".utf8))
        #expect(try AESGCM.open(sealed, key: key, nonce: nonce, associatedData: Array("certificate".utf8)) == Array("certificate pem".utf8))
        var tampered = sealed
        tampered[0] ^= 1
        #expect(throws: CryptoError.self) { try AESGCM.open(tampered, key: key, nonce: nonce, associatedData: Array("certificate".utf8)) }
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed, key: key, nonce: nonce, associatedData: Array("other".utf8)) }
        let wrongKey = SecretBytes(Array("0123456789abcdefghijklmnopqrstuV".utf8))
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed, key: wrongKey, nonce: nonce, associatedData: Array("certificate".utf8)) }
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed, key: SecretBytes([1, 2, 3]), nonce: nonce, associatedData: []) }
    }

    @Test func selfSignedCertificateRoundTripsSerialValidityAndKey() throws {
        let now = Date(timeIntervalSince1970: 1_763_800_000)
        let serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
        let key = Fixtures.gatewayCredentials.platformKey
        let certificate = try X509Certificate.selfSigned(key: key, serialNumber: serial, commonName: "test",
                                                         notBefore: now, notAfter: now.addingTimeInterval(86_400))
        let parsed = try X509Certificate(pem: certificate.pem)
        #expect(parsed.serialNumber == serial)
        #expect(parsed.notBefore == now)
        #expect(parsed.isValid(at: now.addingTimeInterval(60)))
        #expect(!parsed.isValid(at: now.addingTimeInterval(86_401)))
        let message = Array("m".utf8)
        #expect(parsed.publicKey.isValidSignature(try key.sign(message), for: message))
    }

    @Test func noncesAreThirtyTwoAlphanumericsAndDistinct() {
        let nonces = (0..<200).map { _ in SecureRandom.alphanumeric(32) }
        #expect(Set(nonces).count == 200)
        for nonce in nonces {
            #expect(nonce.utf8.count == 32)
            #expect(nonce.utf8.allSatisfy { SecureRandom.alphanumerics.contains($0) })
        }
    }

    @Test func secretsCompareInConstantTimeByContentAndLength() {
        let secret = SecretBytes(Array("token-123".utf8))
        #expect(secret.constantTimeEquals(Array("token-123".utf8)))
        #expect(!secret.constantTimeEquals(Array("token-124".utf8)))
        #expect(!secret.constantTimeEquals(Array("token-12".utf8)))
    }
}

@Suite struct DigestTests {
    /// FIPS 180-2's "abc" vector.
    @Test func sha256MatchesTheStandardVector() {
        let hex = SHA256.digest(Array("abc".utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
