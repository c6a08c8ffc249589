import AuthInfoDaemon
import WeChatPay

/// Help texts, one per command.
enum Usage {
    static let overview = """
    authinfod \(BuildInfo.version): keeps WeChat Pay face-pay authinfo fresh, cached and served.

    Usage:
      authinfod run          [--config FILE]   run in the foreground (what systemd starts)
      authinfod check-config [--config FILE]   validate the config and summarise it; no network, no writes
      authinfod status       [--config FILE] [--json]
                                               every device's state, and the runway
      authinfod get DEVICE_ID [--config FILE]  print the cached authinfo value alone
      authinfod refresh (DEVICE_ID... | --all) [--config FILE]
                                               ask the running daemon to refresh now
      authinfod reload       [--config FILE]   ask the running daemon to re-read its config; waits for the outcome
      authinfod exchange DEVICE_ID (--raw-data-file FILE | --raw-data -) [--config FILE]
                                               hand the daemon new raw_data, print the authinfo document
      authinfod token --out-user-id ID --organization-id ORG [--config FILE]
                                               obtain a face-pay signing token (POST /v3/offlinefacemch/tokens)
      authinfod demo         [--devices N]     the whole story against a built-in simulator
      authinfod --version | --help | help COMMAND

    The config defaults to \(Configuration.defaultPath), or $AUTHINFOD_CONFIG when set.
    Exit status: 0 success, 1 failure, 2 usage error.
    """

    static let commands: [String: String] = [
        "exchange": """
        Usage: authinfod exchange DEVICE_ID (--raw-data-file FILE | --raw-data -) [--config FILE]

        What a terminal's app does over the socket API (POST /v1/devices/ID/authinfo): hands the
        running daemon the raw_data the face SDK generated and prints the authinfo document it
        answers with. The cached value comes back at once when it is fresh and came from this
        raw_data; otherwise the device is refreshed now (within the rate limit). Exit 0 with the
        document (on stderr a note when it is the cached one because no new value could be had),
        1 when the gateway refused this raw_data or no valid value exists.
        """,
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
        "run": """
        Usage: authinfod run [--config FILE]

        Runs the daemon in the foreground, logging to stderr: keeps every configured device's
        authinfo fresh, cached in SQLite and published, and serves the socket API. SIGTERM or
        SIGINT stop it (exit 0); SIGUSR1 logs the summary.
        """,
        "status": """
        Usage: authinfod status [--config FILE] [--json]

        One row per device: state (fresh, stale, expired, rejected, pending), age, expires in,
        next refresh, consecutive failures and last error; then a summary and the runway (time
        until the first device's authinfo expires). Asks the running daemon on its Unix socket;
        when none answers, reads the SQLite cache and says so.
        """,
        "get": """
        Usage: authinfod get DEVICE_ID [--config FILE]

        Prints the device's authinfo alone. Exit 0 when valid; 1 when the device is unknown or has
        no value; 3 when its only value has expired (nothing printed).
        """,
        "refresh": """
        Usage: authinfod refresh (DEVICE_ID... | --all) [--config FILE]

        Asks the running daemon (over its Unix socket) to refresh the devices now, within the
        configured rate. Fails with a clear message when no daemon is running.
        """,
        "reload": """
        Usage: authinfod reload [--config FILE]

        Asks the running daemon (over its Unix socket) to re-read its configuration now, and
        waits: exit 0 when applied, exit 1 with the reason when refused (the running
        configuration is kept). What `systemctl reload authinfod` runs; SIGHUP does the same
        without an answer.
        """,
        "demo": """
        Usage: authinfod demo [--devices N]

        Runs the whole story against a built-in gateway simulator in a temporary folder: first
        fill, a scheduled refresh, an outage during which every device stays served, recovery.
        Needs no config, credentials or root; exits 0 by itself in about 30 seconds.
        """,
        "help": "Usage: authinfod help COMMAND\n\nPrints the help of COMMAND.",
    ]
}
