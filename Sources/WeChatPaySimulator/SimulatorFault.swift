/// A way the simulated gateway can misbehave, switched at run time.
public enum SimulatorFault: Sendable, Equatable {
    /// Behave like the real gateway.
    case none
    /// Stop listening: connections are refused until the fault is cleared.
    case down
    /// Answer HTTP 500 SYSTEM_ERROR.
    case serverError
    /// Answer HTTP 429 FREQUENCY_LIMITED.
    case rateLimited
    /// Answer correctly, but only after this many seconds.
    case slow(seconds: Double)
    /// Sign answers with a key that is not the platform key.
    case forgedSignature
    /// Send a `WECHATPAY/SIGNTEST/` probe signature.
    case signTest
    /// Send answers without signature headers.
    case missingSignature
    /// Sign answers with a timestamp 10 minutes old.
    case staleTimestamp
    /// Answer 200 with a correctly signed body that is not the endpoint's JSON.
    case garbageBody
    /// Answer this status with PARAM_ERROR and no signature: what anyone on the path could send.
    case unsignedError(status: Int)
    /// Read the next request (its nonce is then spent), close the connection without answering,
    /// and go back to `.none`: a connection lost after the gateway read the request.
    case hangUpOnceAfterReading
}

/// How the simulated gateway signs its answers, matching the merchant's verification mode.
public enum SimulatorSigningMode: Sendable, Equatable {
    /// With the WeChat Pay public key (`Wechatpay-Serial: PUB_KEY_ID_…`).
    case publicKey
    /// With a platform certificate served (encrypted with the APIv3 key) at `/v3/certificates`.
    case platformCertificate
}

/// One request the simulator received, for tests to count and inspect.
public struct SimulatorRequestRecord: Sendable {
    public let method: String
    public let path: String
    /// `device_id` of an authinfo request.
    public let deviceID: String?
    /// `raw_data` of an authinfo request (a test double may keep it; a real gateway log would not).
    public let rawData: String?
    /// The status answered (0 when the connection was refused or no answer was sent).
    public let status: Int
    public let at: Double
}
