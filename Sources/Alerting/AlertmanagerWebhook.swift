import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging

/// Posts alert transitions to `--alert-webhook URL` in Alertmanager's webhook format
/// (version 4), so whatever receives Alertmanager's notifications (a chat bridge, a pager
/// relay) receives ours: one message per transition, the alert's labels carrying
/// `alertname` and `severity`.
public struct AlertmanagerWebhook: Sendable {
    public let url: URL
    /// Where people find the alert (the console's address), as Alertmanager's `externalURL`.
    public let externalURL: String
    let logger: Logger

    public init(url: URL, externalURL: String, logger: Logger) {
        self.url = url
        self.externalURL = externalURL
        self.logger = logger
    }

    /// The JSON body for one transition.
    public func payload(_ transition: AlertEvaluator.Transition) -> [String: Any] {
        let (alert, status, endsAt): (ActiveAlert, String, Double?) = switch transition {
        case .fired(let alert): (alert, "firing", nil)
        case .resolved(let alert, let at): (alert, "resolved", at)
        }
        var labels = alert.labels
        labels["alertname"] = alert.name
        labels["severity"] = alert.severity
        let annotations = ["summary": alert.summary, "description": alert.description]
        let groupLabels = ["alertname": alert.name]
        return [
            "version": "4",
            "groupKey": "{}:{alertname=\"\(alert.name)\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "fulfillment",
            "groupLabels": groupLabels,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": externalURL,
            "alerts": [[
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": Self.timestamp(alert.firingSince ?? alert.activeSince),
                // Alertmanager's zero time for an alert that has not ended.
                "endsAt": endsAt.map(Self.timestamp) ?? "0001-01-01T00:00:00Z",
                "generatorURL": externalURL + "/#alerts",
                "fingerprint": Self.fingerprint(alert.key),
            ] as [String: Any]],
        ]
    }

    /// Sends one transition; a receiver that is down is retried a few times, then logged.
    public func send(_ transition: AlertEvaluator.Transition) async {
        guard let body = try? JSONSerialization.data(withJSONObject: payload(transition), options: [.sortedKeys]) else { return }
        var request = URLRequest(url: url, timeoutInterval: 5)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body
        var delay = Duration.milliseconds(200)
        for attempt in 1...3 {
            do {
                let (_, response) = try await URLSession.shared.data(for: request)
                if let status = (response as? HTTPURLResponse)?.statusCode, (200..<300).contains(status) { return }
                logger.warning("alert webhook answered with an error", metadata: ["http.status": "\((response as? HTTPURLResponse)?.statusCode ?? 0)", "attempt": "\(attempt)"])
            } catch {
                logger.warning("alert webhook unreachable", metadata: ["error.message": "\(error.localizedDescription)", "attempt": "\(attempt)"])
            }
            try? await Task.sleep(for: delay)
            delay *= 4
        }
        logger.error("alert webhook gave up after 3 attempts; the alert is still listed by `stats` and /api/alerts")
    }

    static func timestamp(_ seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    /// A stable 16-hex-digit id of the instance (FNV-1a of its name and labels).
    static func fingerprint(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
