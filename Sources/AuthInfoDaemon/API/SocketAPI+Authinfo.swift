import FoundationEssentials
import HTTPServer
import WeChatPay

/// `GET /v1/devices/{id}/authinfo`, the hot path: answered from the served documents on the
/// listener's thread, with an `ETag`; `If-None-Match` gives 304 while the value is the same, and
/// `?wait=SECONDS` (at most 300) holds the request until the value changes or the wait ends.
extension SocketAPI {
    static func readAuthinfo(_ id: String, _ request: HTTPRequest, served: ServedDocuments, _ responder: HTTPResponder) {
        guard let wait = waitSeconds(request.query) else {
            return responder.respondNow(.error(400, "invalid_wait"))
        }
        guard let current = served.lookup(id) else { return responder.respondNow(.error(404, "unknown_device")) }
        let presented = request.header("If-None-Match").map(EntityTags.init)
        let matching = current.flatMap { entry in presented?.matches(entry.etag) == true ? entry : nil }
        guard wait > 0, matching != nil || (current == nil && presented == nil) else {
            if let matching { return responder.respondNow(notModified(matching.etag)) }
            return responder.respondNow(answer(current, served: served))
        }
        served.wait(for: id, unless: matching?.etag, seconds: wait) { outcome in
            switch outcome {
            case .changed(let entry): responder.respond(answer(entry, served: served))
            case .unchanged: responder.respond(matching.map { notModified($0.etag) } ?? .error(503, "no_authinfo_yet"))
            case .gone: responder.respond(.error(404, "unknown_device"))
            }
        }
    }

    private static func answer(_ entry: ServedDocuments.Entry?, served: ServedDocuments) -> HTTPResponse {
        guard let entry else { return .error(503, "no_authinfo_yet") }
        return HTTPResponse(status: 200, headers: [("ETag", entry.etag)], preformattedFields: ServedDocuments.Entry.fields,
                            body: entry.body(at: served.monotonicNow()))
    }

    private static func notModified(_ etag: String) -> HTTPResponse {
        HTTPResponse(status: 304, headers: [("ETag", etag), ("Cache-Control", "no-store")])
    }

    /// `wait` of the query: 0 when absent, nil when it is not a number of seconds from 0 to 300.
    static func waitSeconds(_ query: String?) -> Double? {
        guard let query else { return 0 }
        var wait = 0.0
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "wait" else { continue }
            guard parts.count == 2, parts[1].utf8.count <= 8, let seconds = Double(parts[1]), seconds.isFinite,
                  (0...ServedDocuments.maximumWait).contains(seconds) else { return nil }
            wait = seconds
        }
        return wait
    }
}

/// The entity tags of an `If-None-Match` field, compared weakly (RFC 9110 13.1.2): `W/` is
/// ignored, `*` matches any served value.
struct EntityTags {
    private let tags: [String]
    private let any: Bool

    init(_ field: String) {
        let items = field.split(separator: ",").map { $0.trimmingWhitespace() }
        any = items.contains("*")
        tags = items.map(Self.opaque)
    }

    func matches(_ etag: String) -> Bool {
        any || tags.contains(Self.opaque(etag))
    }

    private static func opaque(_ tag: String) -> String {
        tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag
    }
}

/// `POST /v1/devices/{id}/authinfo` `{"raw_data":"…"}`: the exchange.
extension SocketAPI {
    static func exchange(_ id: String, _ request: HTTPRequest, caller: Caller, context: RouteContext, _ responder: HTTPResponder) {
        guard case .object(let members)? = try? JSONParser.parse(request.body),
              case .string(let text)? = members.first(where: { $0.key == "raw_data" })?.value else {
            return responder.respond(.error(400, "expected_raw_data"))
        }
        guard let rawData = validRawData(text) else { return responder.respond(.error(400, "invalid_raw_data")) }
        let service = context.service, logger = context.logger
        service.exchange(id, rawData: rawData) { outcome in
            let response = exchangeAnswer(outcome, service: service)
            logger.info("exchanged", ["device": id, "by": caller.name, "status": response.status, "result": result(outcome)])
            responder.respond(response)
        }
    }

    private static func exchangeAnswer(_ outcome: ExchangeOutcome, service: any DeviceService) -> HTTPResponse {
        switch outcome {
        case .value(let entry):
            return answer(entry, served: service.served)
        case .cached(let entry, let problem):
            var response = answer(entry, served: service.served)
            // The document, with what kept it from being new: `{…,"refresh_error":{…}}`.
            response.body.removeLast()
            response.body += ",\"refresh_error\":\(problemJSON(problem))}".utf8
            return response
        case .unavailable(let problem):
            return HTTPResponse(status: 503, headers: [("Content-Type", "application/json"), ("Retry-After", String(Int(problem.retryIn.rounded(.up))))],
                                body: Array("{\"error\":\"gateway_unavailable\",\"refresh_error\":\(problemJSON(problem))}".utf8))
        case .rawDataRejected(let code, let message):
            return HTTPResponse(status: 422, contentType: "application/json",
                                text: "{\"error\":\"raw_data_rejected\",\"code\":\(JSONText.quote(code)),\"message\":\(JSONText.quote(message))}")
        case .deviceRejected(let code, let message):
            return HTTPResponse(status: 502, contentType: "application/json",
                                text: "{\"error\":\"device_rejected\",\"code\":\(JSONText.quote(code)),\"message\":\(JSONText.quote(message))}")
        case .unknownDevice:
            return .error(404, "unknown_device")
        }
    }

    private static func problemJSON(_ problem: RefreshProblem) -> String {
        "{\"code\":\(JSONText.quote(problem.code)),\"message\":\(JSONText.quote(problem.message)),\"retry_in_seconds\":\(Int(problem.retryIn.rounded(.up)))}"
    }

    private static func result(_ outcome: ExchangeOutcome) -> String {
        switch outcome {
        case .value: "value"
        case .cached: "cached"
        case .unavailable: "unavailable"
        case .rawDataRejected: "raw_data_rejected"
        case .deviceRejected: "device_rejected"
        case .unknownDevice: "unknown_device"
        }
    }
}
