import CoreMetrics
import FulfillmentMetrics
import Prometheus

/// The process's metrics backend: a swift-prometheus registry behind a swift-metrics
/// factory. The factory takes each metric's help text and buckets from `MetricCatalogue`
/// (swift-prometheus' own factory writes no `# HELP`, which `promtool check metrics` refuses).
public final class PrometheusBackend: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let handles: MetricHandles

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        handles = MetricHandles(factory: CataloguedFactory(registry: registry))
    }

    /// The exposition in Prometheus' text format (what `GET /metrics` serves).
    public func exposition() -> String { registry.emitToString() }

    /// The same, read back into values.
    public func snapshot(at: Double) -> MetricsSnapshot { MetricsSnapshot.parse(exposition(), at: at) }
}

/// A swift-metrics factory onto a Prometheus registry that knows each catalogued metric's
/// help and buckets. A name not in the catalogue still works, with no help text.
struct CataloguedFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    func help(_ label: String) -> String { MetricCatalogue.named(label)?.help ?? "" }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(name: label, labels: dimensions, help: help(label)) }
        return registry.makeValueHistogram(name: label, labels: dimensions, buckets: buckets(label).map { $0 }, help: help(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: help(label))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(
            name: label, labels: dimensions, buckets: buckets(label).map { .nanoseconds(Int64($0 * 1e9)) }, help: help(label))
    }

    func buckets(_ label: String) -> [Double] {
        if case .histogram(let buckets) = MetricCatalogue.named(label)?.kind { return buckets }
        return [0.001, 0.01, 0.1, 1, 10]
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
