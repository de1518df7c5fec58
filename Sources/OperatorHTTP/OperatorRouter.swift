import Alerting
import Dispatcher
import Foundation
import Hummingbird
import Messaging
import NIOCore
import SagaDomain
import SagaRuntime

/// The routes of the operator listener, built in one place: health (`/healthz`,
/// `/readyz`), `/metrics`, and the admin API under `/api/` (docs/api.md). Reads are open;
/// writes need the admin token and are written to the audit topic. Errors are JSON
/// (`{"error":{"message":…}}`) with a 4xx or 5xx status, never a crash.
public enum OperatorRouter {
    public static func make(_ surface: OperatorSurface) -> Router<OperatorRequestContext> {
        let router = Router(context: OperatorRequestContext.self)
        let api = AdminAPI(surface: surface)

        router.get("healthz") { _, _ in
            try JSONResponse.make(["status": "ok", "role": surface.role])
        }
        router.get("readyz") { _, _ in
            let (ready, conditions) = await surface.readiness.evaluate()
            return try JSONResponse.make(Readyz(ready: ready, checks: conditions), status: ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            await surface.sampler?.sample()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: surface.backend.exposition())))
        }

        router.get("api/orders/:id") { _, context in try await api.order(try context.parameters.require("id")) }
        router.get("api/orders/:id/body") { _, context in try await api.orderBody(try context.parameters.require("id")) }
        router.get("api/orders") { request, _ in try await api.orders(request) }
        router.post("api/orders") { request, context in try await api.write(request, context) { try await api.submitOrders(request) } }
        router.get("api/stats") { _, _ in try await api.stats() }
        router.get("api/alerts") { _, _ in try api.alerts() }
        router.get("api/topics") { _, _ in try await api.topics() }
        router.get("api/dlq") { _, _ in try await api.deadLetterTopics() }
        router.get("api/dlq/:topic") { request, context in try await api.deadLetters(try context.parameters.require("topic"), request) }
        router.post("api/dlq/:topic/redrive") { request, context in
            try await api.write(request, context) { try await api.redrive(try context.parameters.require("topic"), request) }
        }
        ConsoleRoutes.add(to: router, surface: surface)
        return router
    }

    struct Readyz: Encodable {
        var ready: Bool
        var checks: [String: Bool]
    }
}

/// JSON bodies: sorted keys, UTF-8, with the status given.
enum JSONResponse {
    static func make<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
