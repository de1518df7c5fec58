/// When appended data is forced to disk, and so when a produce is acknowledged.
public enum FsyncPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Every append is fsynced by its own producer before it is acknowledged.
    case always
    /// Group commit (the default): concurrent producers share one fsync; nothing is
    /// acknowledged, or shown to consumers, before it is on disk.
    case batch
    /// A background fsync every so many milliseconds; acknowledged at once (a crash may
    /// lose up to one interval).
    case interval(milliseconds: Int)
    /// The operating system decides; acknowledged at once.
    case never

    /// Parses `always`, `batch`, `never`, `interval` (100 ms) or `interval:MS`.
    public init?(parsing text: String) {
        let lowered = text.lowercased()
        switch lowered {
        case "always": self = .always
        case "batch": self = .batch
        case "never": self = .never
        case "interval": self = .interval(milliseconds: 100)
        default:
            let parts = lowered.split(whereSeparator: { $0 == ":" || $0 == "=" })
            guard parts.count == 2, parts[0] == "interval", let ms = Int(parts[1]), ms > 0 else { return nil }
            self = .interval(milliseconds: ms)
        }
    }

    /// Whether an acknowledged record is guaranteed to survive a crash of the process.
    public var acknowledgesDurably: Bool {
        switch self {
        case .always, .batch: true
        case .interval, .never: false
        }
    }

    public var description: String {
        switch self {
        case .always: "always"
        case .batch: "batch"
        case .interval(let ms): "interval:\(ms)"
        case .never: "never"
        }
    }
}
