/// What a listening host name says about who can reach it (the Kafka listener, the HTTP
/// listener): one rule for both.
public enum HostAddress {
    /// Whether only this machine can reach `host` (127.x, ::1, localhost).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}
