/// The product name and version, as sent in `User-Agent` and printed by `authinfod --version`.
public enum BuildInfo {
    public static let name = "authinfod"
    public static let version = "0.1.0"
    /// `authinfod/<version>`: the gateway requires a User-Agent naming the product.
    public static var userAgent: String { "\(name)/\(version)" }
}
