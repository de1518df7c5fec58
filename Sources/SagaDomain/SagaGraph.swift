/// Draws the saga from its configuration: steps, lanes, retry tiers with their delays,
/// dead-letter topics and the compensation path, as Mermaid or Graphviz DOT.
public struct SagaGraph: Sendable {
    public let configuration: SagaConfiguration

    public init(configuration: SagaConfiguration) { self.configuration = configuration }

    public struct Edge: Codable, Sendable {
        public var from: String
        public var to: String
        public var label: String?
        public var dashed = false
    }

    public struct Node: Codable, Sendable {
        public var id: String
        public var label: String
        public var isTopic: Bool
        /// The topic's name (topics only).
        public var topic: String?

        enum CodingKeys: String, CodingKey { case id, label, isTopic = "is_topic", topic }
    }

    /// The drawing's elements, for the web console (which lays them out itself).
    public struct Model: Codable, Sendable {
        public var nodes: [Node]
        public var edges: [Edge]
    }

    public var elements: Model {
        let (nodes, edges) = model()
        return Model(nodes: nodes, edges: edges)
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    /// The dead-letter edge's label: "compensate" or "park", or which errors compensate (and
    /// with which undos, when the step has its own list) and that the rest park.
    static func exhaustedLabel(_ policy: StepPolicy, undo: [SagaStep]) -> String {
        if policy.onExhausted == .park || policy.compensateOn.isEmpty { return "park" }
        let undos = policy.undo == nil ? "" : " (" + (undo.isEmpty ? "nothing to undo" : undo.map(\.undoName).joined(separator: " → ")) + ")"
        if policy.compensateOn.contains("States.ALL") { return "compensate" + undos }
        return "\(policy.compensateOn.joined(separator: ", ")): compensate\(undos); other errors: park"
    }

    func model() -> (nodes: [Node], edges: [Edge]) {
        let t = configuration.topics
        var nodes: [Node] = []
        var edges: [Edge] = []
        func id(_ text: String) -> String { text.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() }
        func topic(_ name: String) -> String {
            let nodeID = "t_" + id(name)
            if !nodes.contains(where: { $0.id == nodeID }) { nodes.append(Node(id: nodeID, label: name, isTopic: true, topic: name)) }
            return nodeID
        }
        func service(_ name: String, _ label: String) -> String {
            if !nodes.contains(where: { $0.id == name }) { nodes.append(Node(id: name, label: label, isTopic: false, topic: nil)) }
            return name
        }
        let dispatcher = service("dispatcher", "dispatcher: validate, route VIP (tier vip or amount > \(Int(configuration.vipAmountThreshold)))")
        edges.append(Edge(from: topic(t.orders), to: dispatcher))
        edges.append(Edge(from: topic(t.ordersPriority), to: dispatcher, label: "VIP, drained first"))
        edges.append(Edge(from: dispatcher, to: topic(t.rejected), label: "invalid"))
        var previous = dispatcher
        let driver = service("compensation_driver", "compensation driver")
        for step in SagaStep.allCases {
            let policy = configuration[step]
            let worker = service(step.rawValue, "\(step.rawValue): \(step.actionName) (timeout \(Self.seconds(policy.timeoutSeconds)))")
            edges.append(Edge(from: previous, to: topic(t.requested(step)), label: previous == dispatcher ? "standard" : "ok"))
            edges.append(Edge(from: previous, to: topic(t.requested(step, priority: .vip)), label: "vip"))
            edges.append(Edge(from: topic(t.requested(step)), to: worker))
            edges.append(Edge(from: topic(t.requested(step, priority: .vip)), to: worker, label: "drained first"))
            for tier in 0..<policy.retryTiers {
                let name = t.retry(step, tier: tier + 1)
                let errors = policy.retry.filter { $0.maxAttempts > tier }.flatMap(\.errorEquals)
                edges.append(Edge(from: worker, to: topic(name), label: "\(errors.joined(separator: ", ")): retry \(tier + 1) after \(Self.seconds(policy.tierDelaySeconds(tier + 1)))", dashed: true))
                edges.append(Edge(from: topic(name), to: worker, dashed: true))
            }
            edges.append(Edge(from: worker, to: topic(t.deadLetter(step)), label: "exhausted or non-retryable"))
            edges.append(Edge(from: topic(t.deadLetter(step)), to: driver, label: Self.exhaustedLabel(policy, undo: configuration.undoOrder(forFailureAt: step))))
            previous = worker
        }
        edges.append(Edge(from: previous, to: topic(t.completed), label: "ok"))
        let compensator = service("compensation", "compensation: cancel shipment → release inventory → refund → failure notice")
        edges.append(Edge(from: driver, to: topic(t.compensation), label: "undo what the order holds"))
        edges.append(Edge(from: topic(t.compensation), to: compensator))
        for tier in 0..<configuration.compensation.retryTiers {
            let name = t.retry(nil, tier: tier + 1)
            edges.append(Edge(from: compensator, to: topic(name), label: "retry \(tier + 1) after \(Self.seconds(configuration.compensation.tierDelaySeconds(tier + 1)))", dashed: true))
            edges.append(Edge(from: topic(name), to: compensator, dashed: true))
        }
        edges.append(Edge(from: compensator, to: topic(t.compensated), label: "done"))
        edges.append(Edge(from: compensator, to: topic(t.deadLetter(nil)), label: "past the cap"))
        edges.append(Edge(from: topic(t.deadLetter(nil)), to: driver))
        edges.append(Edge(from: driver, to: topic(t.manualReview), label: "alert"))
        let watchdog = service("watchdog", "watchdog: stuck past the step budget → re-request, then compensate")
        edges.append(Edge(from: watchdog, to: topic(t.compensation), dashed: true))
        return (nodes, edges)
    }

    public func mermaid() -> String {
        let (nodes, edges) = model()
        var lines = ["flowchart LR"]
        for node in nodes {
            let label = node.label.replacingOccurrences(of: "\"", with: "'")
            lines.append(node.isTopic ? "    \(node.id)[/\"\(label)\"/]" : "    \(node.id)[\"\(label)\"]")
        }
        for edge in edges {
            let arrow = edge.dashed ? "-.->" : "-->"
            if let label = edge.label {
                lines.append("    \(edge.from) \(arrow)|\"\(label.replacingOccurrences(of: "\"", with: "'"))\"| \(edge.to)")
            } else {
                lines.append("    \(edge.from) \(arrow) \(edge.to)")
            }
        }
        return lines.joined(separator: "\n")
    }

    public func dot() -> String {
        let (nodes, edges) = model()
        var lines = ["digraph saga {", "    rankdir=LR;", "    node [fontname=\"Helvetica\", fontsize=10];", "    edge [fontname=\"Helvetica\", fontsize=9];"]
        for node in nodes {
            let label = node.label.replacingOccurrences(of: "\"", with: "\\\"")
            lines.append(node.isTopic ? "    \(node.id) [shape=cds, style=filled, fillcolor=\"#eef3ff\", label=\"\(label)\"];" : "    \(node.id) [shape=box, style=rounded, label=\"\(label)\"];")
        }
        for edge in edges {
            var attributes: [String] = []
            if let label = edge.label { attributes.append("label=\"\(label.replacingOccurrences(of: "\"", with: "\\\""))\"") }
            if edge.dashed { attributes.append("style=dashed") }
            lines.append("    \(edge.from) -> \(edge.to)" + (attributes.isEmpty ? ";" : " [\(attributes.joined(separator: ", "))];"))
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }
}
