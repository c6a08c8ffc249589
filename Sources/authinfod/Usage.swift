import WeChatPay

/// Help texts, one per command.
enum Usage {
    static let overview = """
    authinfod \(BuildInfo.version): keeps WeChat Pay face-pay authinfo fresh, cached and served.

    Usage:
      authinfod check-config [--config FILE]   validate the config and summarise it; no network, no writes
      authinfod token --out-user-id ID --organization-id ORG [--config FILE]
                                               obtain a face-pay signing token (POST /v3/offlinefacemch/tokens)
      authinfod --version | --help | help COMMAND

    The config defaults to \(ConfigDefaults.path), or $AUTHINFOD_CONFIG when set.
    Exit status: 0 success, 1 failure, 2 usage error.
    """

    static let commands: [String: String] = [
        "check-config": """
        Usage: authinfod check-config [--config FILE]

        Validates the configuration the daemon would run with: every key, every device, and every
        key file (present, readable only by its owner and group, the expected PEM). Prints a summary
        of the merchant, the verification mode, the devices and the paths. Touches no network and
        writes nothing. Exits 1 with one line naming the file and key when something is wrong.
        """,
        "token": """
        Usage: authinfod token --out-user-id ID --organization-id ORG [--config FILE]

        Calls POST /v3/offlinefacemch/tokens (scene WEBSESSION) with the config's merchant
        credentials and prints the token alone on stdout. The answer's signature is verified;
        a forged or unverifiable answer is an error and no token is printed.
        """,
        "help": "Usage: authinfod help COMMAND\n\nPrints the help of COMMAND.",
    ]
}

enum ConfigDefaults {
    static let path = "/etc/authinfod/authinfod.json"
}
