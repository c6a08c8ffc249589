import Foundation
import HTTPServer
import WeChatPay

/// The socket API (CONTRACT.md, "Where devices read"). Requests arrive on a server queue and
/// are answered from the daemon's queue; nothing here blocks either.
extension Daemon {
    static let maximumRawDataBytes = 16 * 1024

    /// Answers `request` from `caller`. `GET …/authinfo`, the hot path, is answered at once on the
    /// listener's queue from `served`; everything else hops onto the daemon's queue.
    func serve(_ request: HTTPRequest, caller: Caller, _ responder: HTTPResponder) {
        if request.method == "GET", let id = Self.authinfoDevice(request.path) {
            guard caller.mayAccess(id) else { return responder.respondNow(.error(403, "forbidden")) }
            switch served.lookup(id) {
            case nil: responder.respondNow(.error(404, "unknown_device"))
            case .some(nil): responder.respondNow(.error(503, "no_authinfo_yet"))
            case .some(let entry?):
                responder.respondNow(HTTPResponse(status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                                                  body: entry.body(at: clock.monotonic())))
            }
            return
        }
        queue.async {
            if let response = self.route(request, caller: caller, responder) { responder.respond(response) }
        }
    }

    /// The response, or nil when `responder` is answered later (tokens); runs on the queue.
    private func route(_ request: HTTPRequest, caller: Caller, _ responder: HTTPResponder) -> HTTPResponse? {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch segments {
        case ["", "healthz"]:
            return only("GET", request) ?? json(200, "{\"status\":\"ok\"}")
        case ["", "metrics"]:
            if let refusal = only("GET", request) ?? admin(caller) { return refusal }
            let text = metrics.exposition(statusReportOnQueue(), version: BuildInfo.version, storageFault: storageFault != nil)
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: text)
        case ["", "v1", "status"]:
            if let refusal = only("GET", request) ?? admin(caller) { return refusal }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: statusReportOnQueue().json())
        case ["", "v1", "tokens"]:
            if let refusal = only("POST", request) ?? admin(caller) { return refusal }
            return token(request, caller: caller, responder)
        case let path where path.count == 5 && path[0] == "" && path[1] == "v1" && path[2] == "devices":
            return device(path[3], action: path[4], request, caller: caller)
        default:
            return .error(404, "not_found")
        }
    }

    /// The device id of a `/v1/devices/{id}/authinfo` path.
    static func authinfoDevice(_ path: String) -> String? {
        let bytes = path.utf8
        guard bytes.count > 21, bytes.starts(with: "/v1/devices/".utf8), bytes.reversed().starts(with: "/authinfo".utf8.reversed()) else { return nil }
        let id = bytes.dropFirst(12).dropLast(9)
        guard !id.contains(UInt8(ascii: "/")) else { return nil }
        return String(id)
    }

    private func device(_ id: String, action: String, _ request: HTTPRequest, caller: Caller) -> HTTPResponse {
        let method: String
        switch action {
        case "authinfo": method = "GET"
        case "raw_data": method = "PUT"
        case "refresh": method = "POST"
        default: return .error(404, "not_found")
        }
        guard caller.mayAccess(id) else { return .error(403, "forbidden") }
        if let refusal = only(method, request) { return refusal }
        guard devices.contains(id) else { return .error(404, "unknown_device") }
        switch action {
        case "authinfo":
            guard let (document, state) = documentOnQueue(id) else { return .error(503, "no_authinfo_yet") }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: document.json(state: state))
        case "raw_data":
            return pushRawData(id, request.body, caller: caller)
        default:
            if let refusal = admin(caller) { return refusal }
            refreshNowOnQueue([id])
            logger.info("refresh_requested", ["device": id, "by": caller.name])
            return json(202, "{\"status\":\"refresh_scheduled\"}")
        }
    }

    private func pushRawData(_ id: String, _ body: [UInt8], caller: Caller) -> HTTPResponse {
        guard let text = String(validating: body, as: UTF8.self) else { return .error(400, "raw_data_not_utf8") }
        let rawData = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !rawData.isEmpty, rawData.utf8.count <= Self.maximumRawDataBytes,
              !rawData.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return .error(400, "invalid_raw_data")
        }
        guard var record = records[id] else { return .error(404, "unknown_device") }
        record.pushedRawData = rawData
        if record.rejected { record.rejected = false }
        records[id] = record
        persist(record)
        refreshNowOnQueue([id])
        logger.info("raw_data_pushed", ["device": id, "by": caller.name, "bytes": rawData.utf8.count])
        return HTTPResponse(status: 204)
    }

    private func token(_ request: HTTPRequest, caller: Caller, _ responder: HTTPResponder) -> HTTPResponse? {
        guard case .object(let members)? = try? JSONParser.parse(request.body),
              case .string(let user)? = members.first(where: { $0.key == "out_user_id" })?.value,
              case .string(let organization)? = members.first(where: { $0.key == "organization_id" })?.value,
              !user.isEmpty, !organization.isEmpty, user.utf8.count <= 128, organization.utf8.count <= 128 else {
            return .error(400, "expected {\"out_user_id\":\"…\",\"organization_id\":\"…\"}")
        }
        guard let client else { return .error(503, "not_ready") }
        let logger = self.logger
        Task {
            do throws(WeChatPayError) {
                let token = try await client.token(outUserID: user, organizationID: organization)
                logger.info("token_issued", ["by": caller.name])
                responder.respond(HTTPResponse(status: 200, contentType: "application/json", text: "{\"token\":\(JSONText.quote(token))}"))
            } catch {
                logger.warning("token_failed", ["by": caller.name, "code": error.code, "request_id": error.requestID, "error": error.description])
                let status = error.isRetryable ? 503 : 502
                responder.respond(HTTPResponse(status: status, contentType: "application/json",
                                               text: "{\"error\":\"gateway_error\",\"code\":\(JSONText.quote(error.code)),\"message\":\(JSONText.quote(error.description))}"))
            }
        }
        return nil
    }

    private func only(_ method: String, _ request: HTTPRequest) -> HTTPResponse? {
        guard request.method != method else { return nil }
        var response = HTTPResponse.error(405, "method_not_allowed")
        response.headers.append(("Allow", method))
        return response
    }

    private func admin(_ caller: Caller) -> HTTPResponse? {
        caller.isAdmin ? nil : .error(403, "forbidden")
    }

    private func json(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", text: text)
    }
}
