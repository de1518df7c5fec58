import Foundation
import Messaging
import SagaDomain
import Synchronization

/// JSON for the saga's own small documents (rejections, reports); orders use `canonicalJSON()`.
public enum SagaCoding {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }
}
