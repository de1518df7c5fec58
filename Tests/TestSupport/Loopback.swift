import Foundation

/// Plain TCP on 127.0.0.1, for tests that talk to a listener without a Kafka client.
public enum Loopback {
    /// A connected socket to `port`, or `nil` when nothing accepts there. The caller closes it.
    public static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    public static func isListening(port: Int) -> Bool {
        guard let fd = connect(port: port) else { return false }
        close(fd)
        return true
    }

    /// Returns once something accepts connections on `port`; throws after `seconds`.
    public static func waitUntilListening(port: Int, seconds: Int = 15) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if isListening(port: port) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LoopbackError(message: "nothing listens on 127.0.0.1:\(port) after \(seconds) s")
    }

    /// Writes bytes to `port` on a fresh connection, waits a moment for the peer, closes it.
    public static func sendRaw(_ bytes: [UInt8], port: Int) {
        guard let fd = connect(port: port) else { return }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        usleep(100_000)
    }
}

public struct LoopbackError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
