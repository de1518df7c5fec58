#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Messaging

/// One process owns a data directory: an exclusive `flock` on `DIR/.lock`, which also
/// records the owner's PID and command so a second writer can say who holds it. The kernel
/// drops the lock when the owner dies, even by SIGKILL, so a crash never leaves it stale.
final class DataDirectoryLock: Sendable {
    let file: FileDescriptor

    init(directory: String) throws {
        let path = directory + "/.lock"
        let file = try FileDescriptor(path: path, flags: O_RDWR | O_CREAT)
        guard flock(file.fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? FileSystem.readFile(path)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let lines = holder.split(separator: "\n")
            let pid = lines.first.map(String.init) ?? "unknown"
            let command = lines.dropFirst().first.map { " (\($0))" } ?? ""
            throw BrokerError(
                .dataDirectoryLocked,
                "data directory \(directory) is in use by process \(pid)\(command). Stop that process first, "
                    + "pass a different --data-dir, or use a read-only command (such as `dlq list`, `order`, `stats`, `check`) to inspect it while it runs."
            )
        }
        let command = CommandLine.arguments.joined(separator: " ")
        try file.truncate(to: 0)
        try file.write(Array("\(getpid())\n\(command)\n".utf8), at: 0)
        self.file = file
    }
}
