#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Messaging
import NIOCore

/// A POSIX file descriptor closed on deinit. Reads use `pread`, so concurrent readers
/// never disturb each other or the appender.
final class FileDescriptor: Sendable {
    let fd: Int32
    let path: String

    init(path: String, flags: Int32, mode: mode_t = 0o644) throws {
        let fd = open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw BrokerError(.io, "cannot open \(path): \(errnoDescription())") }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    func size() throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BrokerError(.io, "cannot stat \(path): \(errnoDescription())") }
        return Int64(st.st_size)
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        var written = 0
        while written < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(offset) + off_t(written))
            if n < 0 {
                if errno == EINTR { continue }
                throw BrokerError(.io, "cannot write \(path): \(errnoDescription())")
            }
            written += n
        }
    }

    func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { (buffer) in try write(buffer, at: offset) }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    func read(count: Int, at offset: Int64) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var failure: Error?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do { initialized = try readFully(into: UnsafeMutableRawBufferPointer(buffer), at: offset) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Reads up to `count` bytes at `offset` into a buffer NIO can send as it is: the wire
    /// door's fetch hands slices of it to the socket without copying them again.
    func readBuffer(count: Int, at offset: Int64) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        guard count > 0 else { return buffer }
        _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
            try readFully(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<count]), at: offset)
        }
        return buffer
    }

    /// `pread` until `buffer` is full or the file ends; returns the bytes read.
    private func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw BrokerError(.io, "cannot read \(path): \(errnoDescription())")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    func truncate(to length: Int64) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw BrokerError(.io, "cannot truncate \(path): \(errnoDescription())") }
    }

    func sync() throws {
        #if canImport(Darwin)
        let result = fsync(fd)
        #else
        let result = fdatasync(fd)
        #endif
        guard result == 0 else { throw BrokerError(.io, "cannot fsync \(path): \(errnoDescription())") }
    }
}

func errnoDescription() -> String { String(cString: strerror(errno)) }

/// Small file-system helpers used by the embedded broker.
enum FileSystem {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func createDirectory(_ path: String) throws {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if !isDirectory(prefix), mkdir(prefix, 0o755) != 0, errno != EEXIST {
                throw BrokerError(.io, "cannot create directory \(prefix): \(errnoDescription())")
            }
        }
    }

    static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func remove(_ path: String) { unlink(path) }

    static func removeEmptyDirectory(_ path: String) { rmdir(path) }

    /// Makes a directory's entries (new or renamed files) durable.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Writes a whole file atomically: temporary file, fsync, rename, fsync of the directory.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let file = try FileDescriptor(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        try file.write(bytes, at: 0)
        try file.sync()
        guard rename(temporary, path) == 0 else { throw BrokerError(.io, "cannot rename \(temporary): \(errnoDescription())") }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        syncDirectory(directory.isEmpty ? "." : directory)
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let file = try FileDescriptor(path: path, flags: O_RDONLY)
        return try file.read(count: Int(try file.size()), at: 0)
    }
}
