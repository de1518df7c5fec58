import Alerting
import Dispatcher
import Foundation
import Hummingbird
import IOThreads
import Messaging
import NIOCore
import SagaDomain
import SagaRuntime
import StoreDatabase

/// The admin API's handlers (docs/api.md): each decodes what it needs from the request,
/// answers JSON, and refuses what it cannot serve with a 4xx that says why.
struct AdminAPI: Sendable {
    let surface: OperatorSurface

    // MARK: Orders

    func order(_ id: String) async throws -> Response {
        let store = try requireStore()
        guard let report = try await BlockingIO.run({ try OrderReport.load(id, from: store) }) else {
            throw HTTPError(.notFound, message: "no order \(id): check the id, or whether it is still queued on \(surface.configuration.topics.orders)")
        }
        return try JSONResponse.make(report)
    }

    /// `GET /api/orders/{id}/body`: the order as the intake stored it (canonical JSON).
    func orderBody(_ id: String) async throws -> Response {
        let store = try requireStore()
        let body = try await BlockingIO.run { try store.body(of: id) }
        guard let body else { throw HTTPError(.notFound, message: "no order \(id) in the tracker") }
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    struct OrderPage: Encodable {
        var schema_version = 1
        var state: String
        var orders: [DispatcherStore.OrderRecord]
        var next: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(schema_version, forKey: .schema_version)
            try c.encode(state, forKey: .state)
            try c.encode(orders, forKey: .orders)
            try c.encode(next, forKey: .next)
        }

        enum CodingKeys: String, CodingKey { case schema_version, state, orders, next }
    }

    /// `GET /api/orders?state=in_flight|manual_review|stuck&limit=&after=`: one page, read
    /// through the store's indexes of open orders (never a scan of every order).
    func orders(_ request: Request) async throws -> Response {
        let store = try requireStore()
        let query = request.uri.queryParameters
        let state = query.get("state") ?? "in_flight"
        let limit = try Self.limit(query.get("limit"), default: 50)
        let after = query.get("after")
        let selection: DispatcherStore.Selection
        switch state {
        case "in_flight": selection = .inFlight
        case "manual_review": selection = .manualReview
        case "stuck":
            let budgets = Dictionary(uniqueKeysWithValues: OrderState.allCases.filter { !$0.isTerminal }.map { ($0, Watchdog.budgetMilliseconds($0, surface.configuration)) })
            selection = .stuck(now: UnixClock.nowMillis(), budgets: budgets)
        default:
            throw HTTPError(.badRequest, message: "state must be in_flight, manual_review or stuck, not '\(state)'")
        }
        let page = try await BlockingIO.run {
            do { return try store.orders(selection, after: after, limit: limit) } catch let error as StoreError where error.code == .statementFailed {
                throw HTTPError(.badRequest, message: error.message)
            }
        }
        return try JSONResponse.make(OrderPage(state: state, orders: page.orders, next: page.next))
    }

    struct Submission: Encodable {
        struct Accepted: Encodable {
            var order_id: String
            var priority: String
        }

        struct Rejected: Encodable {
            var line: Int
            var order_id: String?
            var reason: String
            var field: String?
            var message: String

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(line, forKey: .line)
                try c.encode(order_id, forKey: .order_id)
                try c.encode(reason, forKey: .reason)
                try c.encode(field, forKey: .field)
                try c.encode(message, forKey: .message)
            }

            enum CodingKeys: String, CodingKey { case line, order_id, reason, field, message }
        }

        var accepted: [Accepted]
        var rejected: [Rejected]
        var topic: String
    }

    /// `POST /api/orders`: one order, or NDJSON (one per line). Each line is validated as the
    /// dispatcher will validate it; valid ones are produced (byte for byte, keyed by their
    /// id) and answered 202 with their ids, invalid ones are answered with the reason the
    /// dispatcher would give and not produced. (A duplicate id with another body is only
    /// known to the dispatcher: it goes to `orders.rejected` later.)
    func submitOrders(_ request: Request) async throws -> (Response, String) {
        let body = try await request.body.collect(upTo: OperatorLimits.ordersBody)
        let bytes = Array(body.readableBytesView)
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).filter { line in
            line.contains { !($0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r")) }
        }
        guard !lines.isEmpty else { throw HTTPError(.badRequest, message: "send one order as a JSON object, or several as NDJSON (one per line)") }
        let validator = OrderValidator()
        let topics = surface.configuration.topics
        var accepted: [Submission.Accepted] = []
        var rejected: [Submission.Rejected] = []
        var records: [ProducerRecord] = []
        for (index, line) in lines.enumerated() {
            switch validator.validate(Array(line)) {
            case .success(let order):
                let priority = OrderIntake.priority(of: order, threshold: surface.configuration.vipAmountThreshold)
                records.append(ProducerRecord(topic: topics.orders(priority), key: Array(order.orderID.utf8), value: Array(line)))
                accepted.append(.init(order_id: order.orderID, priority: priority.rawValue))
            case .failure(let rejection):
                rejected.append(.init(line: index + 1, order_id: rejection.orderID, reason: rejection.reason.rawValue, field: rejection.field, message: rejection.message))
            }
        }
        if !records.isEmpty {
            do {
                _ = try await surface.broker.produce(records)
            } catch {
                throw HTTPError(.serviceUnavailable, message: "the broker did not take the orders: \(error); nothing was queued, send them again")
            }
        }
        let status: HTTPResponse.Status = accepted.isEmpty ? .unprocessableContent : .accepted
        return (try JSONResponse.make(Submission(accepted: accepted, rejected: rejected, topic: topics.orders), status: status),
                "\(accepted.count) order(s) queued, \(rejected.count) refused")
    }

    // MARK: Saga figures

    func stats() async throws -> Response {
        let store = try requireStore()
        var stats = try await SagaStatistics.collect(store: store, broker: surface.broker, configuration: surface.configuration)
        if let board = surface.alerts {
            stats.alerts = board.firing
            stats.alertsEvaluatedAt = board.evaluatedAt
        }
        return try JSONResponse.make(stats)
    }

    struct AlertList: Encodable {
        var schema_version = 1
        var evaluated_at: Double?
        var alerts: [ActiveAlert]

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(schema_version, forKey: .schema_version)
            try c.encode(evaluated_at, forKey: .evaluated_at)
            try c.encode(alerts, forKey: .alerts)
        }

        enum CodingKeys: String, CodingKey { case schema_version, evaluated_at, alerts }
    }

    /// Firing and pending alerts (`firing_since` null while a condition waits for its `for`).
    func alerts() throws -> Response {
        guard let board = surface.alerts else {
            throw HTTPError(.notFound, message: "this process (\(surface.role)) does not evaluate alerts; ask `run` or the dispatcher, or Prometheus with `fulfillment alerts rules`")
        }
        return try JSONResponse.make(AlertList(evaluated_at: board.evaluatedAt, alerts: board.alerts))
    }

    struct TopicView: Encodable {
        struct Partition: Encodable {
            var partition: Int
            var begin_offset: Int64
            var end_offset: Int64
        }

        struct GroupLag: Encodable {
            var group: String
            var lag: Int64
            var committed: Int64
        }

        var name: String
        var partitions: [Partition]
        var records: Int64
        var groups: [GroupLag]
    }

    /// `GET /api/topics`: every topic with its partitions' offsets and each group's lag on it.
    func topics() async throws -> Response {
        var lagByTopic: [String: [TopicView.GroupLag]] = [:]
        for (group, lags) in try await SagaGroups.lags(surface.broker, surface.configuration) {
            var byTopic: [String: (lag: Int64, committed: Int64)] = [:]
            for lag in lags {
                var entry = byTopic[lag.topic] ?? (0, 0)
                entry.lag += lag.lag
                entry.committed += lag.committedOffset ?? 0
                byTopic[lag.topic] = entry
            }
            for (topic, entry) in byTopic { lagByTopic[topic, default: []].append(.init(group: group, lag: entry.lag, committed: entry.committed)) }
        }
        let views = try await surface.broker.listTopics().sorted { $0.name < $1.name }.map { topic in
            TopicView(
                name: topic.name,
                partitions: topic.partitions.map { .init(partition: $0.partition, begin_offset: $0.beginOffset, end_offset: $0.endOffset) },
                records: topic.partitions.reduce(0) { $0 + $1.endOffset - $1.beginOffset },
                groups: (lagByTopic[topic.name] ?? []).sorted { $0.group < $1.group })
        }
        return try JSONResponse.make(["topics": views])
    }

    // MARK: Dead letters

    func deadLetterTopics() async throws -> Response {
        let letters = DeadLetters(broker: surface.broker, store: try requireStore(), topics: surface.configuration.topics)
        return try JSONResponse.make(["topics": try await letters.summaries()])
    }

    struct LetterPage: Encodable {
        var topic: String
        var letters: [DeadLetters.Letter]
        var next: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(topic, forKey: .topic)
            try c.encode(letters, forKey: .letters)
            try c.encode(next, forKey: .next)
        }

        enum CodingKeys: String, CodingKey { case topic, letters, next }
    }

    /// `GET /api/dlq/{topic}?after=&limit=`: one page, reading only that page.
    func deadLetters(_ topic: String, _ request: Request) async throws -> Response {
        let letters = DeadLetters(broker: surface.broker, store: try requireStore(), topics: surface.configuration.topics)
        let query = request.uri.queryParameters
        let limit = try Self.limit(query.get("limit"), default: 50)
        do {
            let page = try await letters.page(topic: topic, after: query.get("after"), limit: limit)
            return try JSONResponse.make(LetterPage(topic: topic, letters: page.letters, next: page.next))
        } catch let failure as StepFailure {
            throw HTTPError(failure.errorClass == "UnknownTopic" ? .notFound : .badRequest, message: failure.message)
        }
    }

    struct RedriveRequest: Decodable {
        var orders: [String]?
        var all: Bool?
        var dry_run: Bool?
    }

    /// `POST /api/dlq/{topic}/redrive` with `{"orders":[…]}` or `{"all":true}`, and
    /// `"dry_run":true` for a preview: what was (or would be) redriven, and what was skipped.
    func redrive(_ topic: String, _ request: Request) async throws -> (Response, String) {
        let body = try await request.body.collect(upTo: OperatorLimits.smallBody)
        let ask: RedriveRequest
        do {
            ask = try JSONDecoder().decode(RedriveRequest.self, from: Data(body.readableBytesView))
        } catch {
            throw HTTPError(.badRequest, message: "send {\"orders\": [\"o-1\", …]} or {\"all\": true}, with \"dry_run\": true to preview")
        }
        let all = ask.all ?? false
        guard all != (ask.orders != nil) else { throw HTTPError(.badRequest, message: "say which letters: \"orders\": [ids], or \"all\": true (not both)") }
        if let orders = ask.orders, orders.isEmpty || orders.count > OperatorLimits.pageLimit {
            throw HTTPError(.badRequest, message: "\"orders\" must name 1 to \(OperatorLimits.pageLimit) order ids")
        }
        let letters = DeadLetters(broker: surface.broker, store: try requireStore(), topics: surface.configuration.topics)
        guard try await letters.deadLetterTopics().contains(topic) else {
            throw HTTPError(.notFound, message: "\(topic) is not a dead-letter topic; see GET /api/dlq")
        }
        let dryRun = ask.dry_run ?? false
        let result = try await letters.redrive(topics: [topic], orders: ask.orders.map(Set.init), dryRun: dryRun)
        return (try JSONResponse.make(result), "\(dryRun ? "would redrive" : "redrove") \(result.redriven.count) letter(s) of \(topic), skipped \(result.skipped.count)")
    }

    // MARK: Writes

    /// Runs a write: only with the admin token (as `Authorization: Bearer …`, never a cookie,
    /// so another site's page cannot make a browser send it), and written to the audit
    /// topic whatever its result.
    func write(_ request: Request, _ context: OperatorRequestContext, _ body: () async throws -> (Response, String)) async throws -> Response {
        guard let token = surface.adminToken else {
            throw HTTPError(.forbidden, message: "this process (\(surface.role)) takes no writes")
        }
        guard token.accepts(authorization: request.headers[.authorization]) else {
            await audit(request, context, status: 401, summary: "refused: no valid admin token")
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "writes need the admin token: Authorization: Bearer <token> (--admin-token-file, or the token `run` printed at start)")
        }
        do {
            let (response, summary) = try await body()
            await audit(request, context, status: Int(response.status.code), summary: summary)
            return response
        } catch let error as HTTPError {
            await audit(request, context, status: Int(error.status.code), summary: error.body ?? "")
            throw error
        } catch let error as any HTTPResponseError {
            // Hummingbird's own refusals, such as a body over its cap (413).
            await audit(request, context, status: Int(error.status.code), summary: "\(error)")
            throw error
        } catch {
            await audit(request, context, status: 500, summary: "\(error)")
            throw HTTPError(.internalServerError, message: "\(error)")
        }
    }

    struct AuditRecord: Encodable {
        var at: Int64
        var who: String
        var method: String
        var path: String
        var status: Int
        var result: String
    }

    /// One record on `admin.audit` per write (who: the admin token's holder at this address).
    func audit(_ request: Request, _ context: OperatorRequestContext, status: Int, summary: String) async {
        let topic = surface.configuration.topics.audit
        let entry = AuditRecord(
            at: UnixClock.nowMillis(), who: "admin@\(context.remoteAddress)", method: request.method.rawValue, path: request.uri.path, status: status,
            result: String(summary.prefix(500)))
        guard let value = try? JSONEncoder().encode(entry) else { return }
        do {
            try? await surface.broker.createTopic(TopicSpec(name: topic, partitions: 1))
            _ = try await surface.broker.produce(ProducerRecord(topic: topic, key: nil, value: Array(value)))
        } catch {
            surface.logger.error("could not write the audit record", metadata: ["kafka.topic": "\(topic)", "error.message": "\(error)"])
        }
    }

    // MARK: Helpers

    func requireStore() throws -> DispatcherStore {
        guard let store = surface.dispatcherStore else {
            throw HTTPError(.notFound, message: "this process (\(surface.role)) does not host the dispatcher; ask the dispatcher's --http address")
        }
        return store
    }

    static func limit(_ text: String?, default value: Int) throws -> Int {
        guard let text else { return value }
        guard let n = Int(text), (1...OperatorLimits.pageLimit).contains(n) else {
            throw HTTPError(.badRequest, message: "limit must be 1 to \(OperatorLimits.pageLimit), not '\(text)'")
        }
        return n
    }
}
