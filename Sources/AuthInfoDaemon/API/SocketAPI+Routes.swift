import FoundationEssentials
import Glibc
import Dispatch
import Synchronization
import HTTPServer
import WeChatPay

/// The socket API's routes (README, "Where devices read"). `GET …/authinfo`, the hot path, is
/// answered at once on the listener's thread from the served documents; everything else asks
/// the `DeviceService` and answers when it replies. Nothing here blocks a listener.
extension SocketAPI {
    static let maximumRawDataBytes = 16 * 1024

    /// What the routes answer from.
    struct RouteContext: Sendable {
        let service: any DeviceService
        /// `service.served`, held here so the hot path touches nothing else.
        let served: ServedDocuments
        let logger: Logger
        let authFailures: AuthFailures
        let reloader: Reloader
        let connectionLimits: ConnectionLimits
        let openConnections: OpenConnections
    }

    /// The API's two servers, for the open-connection gauge (set once both exist).
    final class OpenConnections: Sendable {
        private let servers = Mutex<(unix: HTTPServer, tcp: HTTPServer)?>(nil)

        func set(unix: HTTPServer, tcp: HTTPServer) { servers.withLock { $0 = (unix, tcp) } }

        var counts: [(listener: String, count: Int)] {
            guard let (unix, tcp) = servers.withLock({ $0 }) else { return [] }
            return [("unix", unix.connectionCount), ("tcp", tcp.connectionCount)]
        }
    }

    /// What `POST /v1/reload` runs: set by the daemon once it exists.
    final class Reloader: Sendable {
        typealias Reload = @Sendable () -> Result<Void, DaemonError>
        private let reload = Mutex<Reload?>(nil)

        func set(_ body: @escaping Reload) { reload.withLock { $0 = body } }

        /// Runs the reload off the listener's thread and replies with its outcome.
        func run(_ reply: @escaping @Sendable (Result<Void, DaemonError>) -> Void) {
            guard let body = reload.withLock({ $0 }) else { return reply(.failure(DaemonError(description: "the daemon is not running"))) }
            DispatchQueue.global().async { reply(body()) }
        }
    }

    /// Answers `request` from `caller`.
    static func route(_ request: HTTPRequest, caller: Caller, context: RouteContext, _ responder: HTTPResponder) {
        if request.method == "GET", let id = authinfoDevice(request.path) {
            guard caller.mayRead(id) else {
                context.authFailures.record(.outOfScope, peer: request.peer, caller: caller.name)
                return responder.respondNow(.error(403, "forbidden"))
            }
            return readAuthinfo(id, request, served: context.served, responder)
        }
        let service = context.service
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false)
        switch segments {
        case ["", "healthz"]:
            responder.respond(only("GET", request) ?? json(200, "{\"status\":\"ok\"}"))
        case ["", "metrics"]:
            if let refusal = only("GET", request) ?? admin(caller, request, context) { return responder.respond(refusal) }
            let failures = context.authFailures, limits = context.connectionLimits, open = context.openConnections
            service.metricsText { text in
                let waiting = "# HELP authinfod_long_polls_waiting GET authinfo requests held by ?wait= now.\n"
                    + "# TYPE authinfod_long_polls_waiting gauge\nauthinfod_long_polls_waiting \(service.served.waitingCount)\n"
                let all = text + failures.exposition() + limits.exposition(open: open.counts) + waiting
                responder.respond(HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: all))
            }
        case ["", "v1", "status"]:
            if let refusal = only("GET", request) ?? admin(caller, request, context) { return responder.respond(refusal) }
            service.status { report in
                responder.respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: report.json()))
            }
        case ["", "v1", "reload"]:
            if let refusal = only("POST", request) ?? admin(caller, request, context) { return responder.respond(refusal) }
            context.reloader.run { result in
                switch result {
                case .success: responder.respond(json(200, "{\"result\":\"applied\"}"))
                case .failure(let error):
                    responder.respond(json(409, "{\"error\":\"config_refused\",\"reason\":\(JSONText.quote(error.description))}"))
                }
            }
        case ["", "v1", "tokens"]:
            if let refusal = only("POST", request) ?? admin(caller, request, context) { return responder.respond(refusal) }
            token(request, caller: caller, service: service, logger: context.logger, responder)
        case let path where path.count == 5 && path[0] == "" && path[1] == "v1" && path[2] == "devices":
            device(String(path[3]), action: path[4], request, caller: caller, context: context, responder)
        default:
            responder.respond(.error(404, "not_found"))
        }
    }

    /// The device id of a `/v1/devices/{id}/authinfo` path.
    static func authinfoDevice(_ path: String) -> String? {
        var path = path
        return path.withUTF8 { bytes in
            guard bytes.count > 21, memcmp(bytes.baseAddress!, "/v1/devices/", 12) == 0, memcmp(bytes.baseAddress! + bytes.count - 9, "/authinfo", 9) == 0 else {
                return nil
            }
            let id = UnsafeBufferPointer(rebasing: bytes[12..<(bytes.count - 9)])
            guard !id.contains(UInt8(ascii: "/")) else { return nil }
            return String(decoding: id, as: UTF8.self)
        }
    }

    private static func device(_ id: String, action: Substring, _ request: HTTPRequest, caller: Caller, context: RouteContext,
                               _ responder: HTTPResponder) {
        let service = context.service, logger = context.logger
        let method: String
        switch action {
        case "authinfo": method = request.method == "POST" ? "POST" : "GET"
        case "raw_data": method = "PUT"
        case "refresh": method = "POST"
        default: return responder.respond(.error(404, "not_found"))
        }
        guard method == "GET" ? caller.mayRead(id) : caller.mayWrite(id) else {
            context.authFailures.record(.outOfScope, peer: request.peer, caller: caller.name)
            return responder.respond(.error(403, "forbidden"))
        }
        if let refusal = only(method, request) { return responder.respond(refusal) }
        guard service.served.lookup(id) != nil else { return responder.respond(.error(404, "unknown_device")) }
        switch action {
        case "authinfo":
            exchange(id, request, caller: caller, context: context, responder)
        case "raw_data":
            guard let text = String(validating: request.body, as: UTF8.self) else { return responder.respond(.error(400, "raw_data_not_utf8")) }
            guard let rawData = validRawData(text) else { return responder.respond(.error(400, "invalid_raw_data")) }
            service.pushRawData(id, rawData) { known in
                guard known else { return responder.respond(.error(404, "unknown_device")) }
                logger.info("raw_data_pushed", ["device": id, "by": caller.name, "bytes": rawData.utf8.count])
                responder.respond(HTTPResponse(status: 204))
            }
        case "refresh":
            if let refusal = admin(caller, request, context) { return responder.respond(refusal) }
            service.refreshNow(id)
            logger.info("refresh_requested", ["device": id, "by": caller.name])
            responder.respond(json(202, "{\"status\":\"refresh_scheduled\"}"))
        default:
            // GET is the hot path above; any other method was refused by `only`.
            responder.respond(.error(405, "method_not_allowed"))
        }
    }

    /// raw_data as the face SDK produces it: trimmed, non-empty, at most `maximumRawDataBytes`,
    /// without control characters.
    static func validRawData(_ text: String) -> String? {
        let rawData = text.trimmingWhitespace()
        guard !rawData.isEmpty, rawData.utf8.count <= maximumRawDataBytes,
              !rawData.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return nil }
        return rawData
    }

    private static func token(_ request: HTTPRequest, caller: Caller, service: any DeviceService, logger: Logger, _ responder: HTTPResponder) {
        guard case .object(let members)? = try? JSONParser.parse(request.body),
              case .string(let user)? = members.first(where: { $0.key == "out_user_id" })?.value,
              case .string(let organization)? = members.first(where: { $0.key == "organization_id" })?.value,
              !user.isEmpty, !organization.isEmpty, user.utf8.count <= 128, organization.utf8.count <= 128 else {
            // Codes only: `HTTPResponse.error` puts the code in a JSON string as it is.
            return responder.respond(.error(400, "expected_out_user_id_and_organization_id"))
        }
        service.mintToken(user: user, organization: organization) { result in
            switch result {
            case .success(let token):
                logger.info("token_issued", ["by": caller.name])
                responder.respond(HTTPResponse(status: 200, contentType: "application/json", text: "{\"token\":\(JSONText.quote(token))}"))
            case .failure(let error):
                logger.warning("token_failed", ["by": caller.name, "code": error.code, "request_id": error.requestID, "error": error.description])
                responder.respond(HTTPResponse(status: error.isRetryable ? 503 : 502, contentType: "application/json",
                                               text: "{\"error\":\"gateway_error\",\"code\":\(JSONText.quote(error.code)),\"message\":\(JSONText.quote(error.description))}"))
            }
        }
    }

    private static func only(_ method: String, _ request: HTTPRequest) -> HTTPResponse? {
        guard request.method != method else { return nil }
        var response = HTTPResponse.error(405, "method_not_allowed")
        response.headers.append(("Allow", method))
        return response
    }

    private static func admin(_ caller: Caller, _ request: HTTPRequest, _ context: RouteContext) -> HTTPResponse? {
        guard !caller.isAdmin else { return nil }
        context.authFailures.record(.notAdmin, peer: request.peer, caller: caller.name)
        return .error(403, "forbidden")
    }

    private static func json(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", text: text)
    }
}
