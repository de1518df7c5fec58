import Foundation
import FulfillmentMetrics
import HTTPTypes
import Hummingbird
import Messaging
import NIOCore
import SagaDomain
import ServiceLifecycle

/// The web console: plain HTML, CSS and JavaScript shipped in the binary's resources (no
/// build step, no CDN), its live stream (Server-Sent Events, one per page), the saga's graph
/// model and a step's recent failures. Pages render every value as text; the Content
/// Security Policy allows no inline script, so even a value that slipped through as markup
/// could not run.
enum ConsoleRoutes {
    /// The console's files, read once from the resources.
    struct Asset: Sendable {
        var bytes: [UInt8]
        var contentType: String
    }

    static let assets: [String: Asset] = {
        var assets: [String: Asset] = [:]
        let types = ["html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"]
        guard let directory = consoleDirectory else { return [:] }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            guard let type = types[(name as NSString).pathExtension], let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else { continue }
            assets[name] = Asset(bytes: Array(data), contentType: type)
        }
        return assets
    }()

    /// SwiftPM's resource bundle beside the executable. Looked up by hand: `Bundle.module`
    /// traps when the bundle is missing (a binary copied without it), and a missing console
    /// must be a 404, not a crash.
    static var consoleDirectory: URL? {
        let bundle = "fulfillment_OperatorHTTP.resources/Console"
        let candidates = [Bundle.main.executableURL?.deletingLastPathComponent(), Bundle.main.bundleURL].compactMap { $0?.appendingPathComponent(bundle) }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("index.html").path) }
    }

    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    static func add(to router: Router<OperatorRequestContext>, surface: OperatorSurface) {
        router.get("/") { _, _ in try asset("index.html") }
        router.get(":file") { _, context in
            let name = try context.parameters.require("file")
            guard name.hasPrefix("console.") else { throw HTTPError(.notFound) }
            return try asset(name)
        }
        router.get("api/graph") { _, _ in try JSONResponse.make(SagaGraph(configuration: surface.configuration).elements) }
        router.get("api/failures") { request, _ in try await failures(request, surface: surface) }
        router.get("api/events") { request, _ in events(request, surface: surface) }
    }

    static func asset(_ name: String) throws -> Response {
        guard let asset = assets[name] else {
            throw HTTPError(.notFound, message: assets.isEmpty
                ? "the console's files are not beside this binary (fulfillment_OperatorHTTP.resources, made by swift build): copy them with it"
                : "no console file \(name)")
        }
        var headers = securityHeaders
        headers[.contentType] = asset.contentType
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
    }

    /// `GET /api/events?view=overview|graph|orders|dlq|topics`: a frame a second until the
    /// page goes away (or after five minutes; the browser's EventSource reconnects).
    static func events(_ request: Request, surface: OperatorSurface) -> Response {
        let view = LiveFeed.View(rawValue: request.uri.queryParameters.get("view") ?? "overview") ?? .overview
        let feed = LiveFeed(surface: surface, view: view)
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var history: [MetricsSnapshot] = []
            var stuck: Int?
            let end = ContinuousClock.now + .seconds(300)
            let encoder = JSONEncoder()
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
            var tick = 0
            while !Task.isCancelled && !Task.isShuttingDownGracefully && ContinuousClock.now < end {
                await surface.sampler?.sample()
                let now = surface.backend.snapshot(at: Date().timeIntervalSince1970)
                history.append(now)
                if history.count > 11 { history.removeFirst() }
                if tick % 5 == 0 { stuck = await feed.stuckCount() }
                let frame = await feed.frame(now: now, before: history[max(0, history.count - 2)], recent: history[0], stuck: stuck)
                let data = try encoder.encode(frame)
                try await writer.write(ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n"))
                tick += 1
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            }
            try await writer.finish(nil)
        })
    }

    struct Failure: Encodable {
        var topic: String
        var partition: Int
        var offset: Int64
        var order_id: String
        var attempt: String?
        var error_class: String?
        var error_message: String?
        var failed_at: Int64?
    }

    /// `GET /api/failures?step=payment&limit=20`: the step's most recent failures, read off
    /// the tails of its retry tiers and its dead-letter topic (no scan of the history).
    static func failures(_ request: Request, surface: OperatorSurface) async throws -> Response {
        let name = request.uri.queryParameters.get("step") ?? ""
        let limit = try AdminAPI.limit(request.uri.queryParameters.get("limit"), default: 20)
        let topics = surface.configuration.topics
        let step = SagaStep(rawValue: name)
        guard step != nil || name == "compensation" else {
            throw HTTPError(.badRequest, message: "step must be one of \(SagaStep.allCases.map(\.rawValue).joined(separator: ", ")), compensation")
        }
        let policy = step.map { surface.configuration[$0] } ?? surface.configuration.compensation
        let names = (0..<policy.retryTiers).map { topics.retry(step, tier: $0 + 1) } + [topics.deadLetter(step)]
        var found: [Failure] = []
        for topic in names {
            guard let description = try? await surface.broker.describeTopic(topic) else { continue }
            for partition in description.partitions where partition.endOffset > partition.beginOffset {
                let from = max(partition.beginOffset, partition.endOffset - Int64(limit))
                for record in try await surface.broker.read(topic: topic, partition: partition.partition, from: from, maxRecords: limit) {
                    found.append(Failure(
                        topic: topic, partition: record.partition, offset: record.offset, order_id: record.keyString ?? "",
                        attempt: record.header(SagaHeader.attempt), error_class: record.header(SagaHeader.errorClass),
                        error_message: record.header(SagaHeader.errorMessage), failed_at: record.header(SagaHeader.failedAt).flatMap(Int64.init)))
                }
            }
        }
        found.sort { ($0.failed_at ?? 0) > ($1.failed_at ?? 0) }
        return try JSONResponse.make(FailurePage(step: name, failures: Array(found.prefix(limit))))
    }

    struct FailurePage: Encodable {
        var step: String
        var failures: [Failure]
    }
}
