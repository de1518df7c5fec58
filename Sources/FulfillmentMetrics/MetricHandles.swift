import CoreMetrics
import Synchronization

/// Makes the handles of one catalogued metric through a swift-metrics factory. The backend
/// (Prometheus in the product, a no-op in benchmarks and most tests) is chosen once, by
/// whoever creates the process's `MetricsFactory`.
public struct MetricHandles: Sendable {
    public let factory: any MetricsFactory

    public init(factory: any MetricsFactory) { self.factory = factory }

    /// No backend: every handle records nothing.
    public static let disabled = MetricHandles(factory: NOOPMetricsHandler.instance)

    public func counter(_ definition: MetricDefinition, _ labels: [String] = []) -> Counter {
        Counter(label: definition.name, dimensions: Self.dimensions(definition, labels), factory: factory)
    }

    public func gauge(_ definition: MetricDefinition, _ labels: [String] = []) -> Gauge {
        Gauge(label: definition.name, dimensions: Self.dimensions(definition, labels), factory: factory)
    }

    /// A histogram of durations (`_seconds`), recorded in nanoseconds.
    public func timer(_ definition: MetricDefinition, _ labels: [String] = []) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: definition.name, dimensions: Self.dimensions(definition, labels), factory: factory)
    }

    static func dimensions(_ definition: MetricDefinition, _ labels: [String]) -> [(String, String)] {
        precondition(labels.count == definition.labels.count, "\(definition.name) takes the labels \(definition.labels)")
        return Array(zip(definition.labels, labels))
    }
}

/// The handles of one metric for label values known only at run time (topics, groups,
/// reasons): each made on first use and kept, never looked up again through the factory.
public final class HandleFamily<Handle: AnyObject & Sendable>: Sendable {
    private let handles = Mutex<[[String]: Handle]>([:])
    private let make: @Sendable ([String]) -> Handle

    public init(_ make: @escaping @Sendable ([String]) -> Handle) { self.make = make }

    public subscript(_ labels: String...) -> Handle { self[labels] }

    public subscript(_ labels: [String]) -> Handle {
        if let handle = handles.withLock({ $0[labels] }) { return handle }
        let handle = make(labels)
        return handles.withLock { handles in
            if let existing = handles[labels] { return existing }
            handles[labels] = handle
            return handle
        }
    }
}
