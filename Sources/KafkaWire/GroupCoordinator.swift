import Broker
import Foundation
import Logging
import Messaging

/// The group coordinator of the wire door: `ClassicGroup` state machines, the parked
/// JoinGroup/SyncGroup requests they complete, session expiry, and offsets, which live in
/// the embedded broker's offset store beside the in-process groups' (so `fulfillment stats`
/// and lag see both).
actor GroupCoordinator {
    private let broker: EmbeddedBroker
    private let logger: Logger
    private var groups: [String: ClassicGroup] = [:]
    private var parkedJoins = ParkedRequests<ClassicGroup.JoinResponse>()
    private var parkedSyncs = ParkedRequests<ClassicGroup.SyncResponse>()
    private var nextToken: UInt64 = 0

    init(broker: EmbeddedBroker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    private func deliver(_ completions: [ClassicGroup.Completion], group: String) {
        for completion in completions {
            switch completion {
            case .join(let member, let response):
                parkedJoins.take(group, member)?.resume(returning: response)
            case .sync(let member, let response):
                parkedSyncs.take(group, member)?.resume(returning: response)
            }
        }
    }

    func join(group: String, _ request: ClassicGroup.JoinRequest) async -> ClassicGroup.JoinResponse {
        func refused(_ error: WireErrorCode) -> ClassicGroup.JoinResponse { .refused(error, memberID: request.memberID) }
        guard !group.isEmpty else { return refused(.invalidGroupID) }
        guard request.sessionTimeout >= .milliseconds(1000), request.sessionTimeout <= .seconds(3600) else { return refused(.invalidSessionTimeout) }
        if broker.hasInProcessMembers(group: group) { return refused(.inconsistentGroupProtocol) }
        var state = groups[group] ?? ClassicGroup()
        let newID = "\(request.clientID.isEmpty ? "member" : request.clientID)-\(UUID().uuidString.lowercased())"
        let (mine, completions) = state.join(request, newMemberID: newID, now: .now)
        groups[group] = state
        deliver(completions, group: group)
        if let mine { return mine }
        let memberID = request.memberID.isEmpty ? newID : request.memberID
        logger.info("member joining group", metadata: ["kafka.group": "\(group)", "kafka.member": "\(memberID)", "kafka.members": "\(state.members.count)"])
        // A rejoin replaces a parked join the client gave up on.
        parkedJoins.take(group, memberID)?.resume(returning: refused(.rebalanceInProgress))
        let token = newToken()
        // Cancelled (the door is shutting down): answer at once instead of holding the
        // connection, and the shutdown, until the rebalance ends.
        return await withTaskCancellationHandler {
            await withCheckedContinuation { parkedJoins.park(group, memberID, token: token, $0) }
        } onCancel: {
            Task { await self.releaseJoin(group, memberID, token: token) }
        }
    }

    private func newToken() -> UInt64 {
        nextToken += 1
        return nextToken
    }

    private func releaseJoin(_ group: String, _ memberID: String, token: UInt64) {
        parkedJoins.take(group, memberID, token: token)?.resume(returning: .refused(.coordinatorNotAvailable, memberID: memberID))
    }

    private func releaseSync(_ group: String, _ memberID: String, token: UInt64) {
        parkedSyncs.take(group, memberID, token: token)?.resume(returning: .init(error: .coordinatorNotAvailable, assignment: []))
    }

    func sync(group: String, memberID: String, generation: Int32, assignments: [String: [UInt8]]) async -> ClassicGroup.SyncResponse {
        guard var state = groups[group] else { return .init(error: .unknownMemberID, assignment: []) }
        let (mine, completions) = state.sync(memberID: memberID, generation: generation, assignments: assignments, now: .now)
        groups[group] = state
        deliver(completions, group: group)
        if let mine {
            if state.phase == .stable && state.leader == memberID {
                logger.info("group stable", metadata: ["kafka.group": "\(group)", "kafka.generation": "\(state.generation)", "kafka.members": "\(state.members.count)"])
            }
            return mine
        }
        parkedSyncs.take(group, memberID)?.resume(returning: .init(error: .rebalanceInProgress, assignment: []))
        let token = newToken()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { parkedSyncs.park(group, memberID, token: token, $0) }
        } onCancel: {
            Task { await self.releaseSync(group, memberID, token: token) }
        }
    }

    func heartbeat(group: String, memberID: String, generation: Int32) -> WireErrorCode {
        guard var state = groups[group] else { return .unknownMemberID }
        let error = state.heartbeat(memberID: memberID, generation: generation, now: .now)
        groups[group] = state
        return error
    }

    func leave(group: String, memberID: String) -> WireErrorCode {
        guard var state = groups[group] else { return .unknownMemberID }
        let (error, completions) = state.leave(memberID: memberID, now: .now)
        keep(state, as: group)
        deliver(completions, group: group)
        if error == .none { logger.info("member left group", metadata: ["kafka.group": "\(group)", "kafka.member": "\(memberID)"]) }
        return error
    }

    /// A group whose last member left or expired is forgotten (its committed offsets stay in
    /// the broker's store), so groups that come and go (a console consumer's random group
    /// name each run) do not pile up for the life of the listener.
    private func keep(_ state: ClassicGroup, as name: String) {
        groups[name] = state.isEmpty ? nil : state
    }

    /// Groups held in memory: with members, or with requests waiting (for tests).
    var groupsHeld: Int { groups.count + parkedJoins.groups + parkedSyncs.groups }

    /// Expires silent members of every group; run periodically by the listener.
    func expireMembers() {
        let now = ContinuousClock.now
        for name in Array(groups.keys) {
            var state = groups[name]!
            let (expired, completions) = state.expire(now: now)
            keep(state, as: name)
            deliver(completions, group: name)
            for member in expired {
                logger.notice("member expired from group (no heartbeat within its session timeout)", metadata: ["kafka.group": "\(name)", "kafka.member": "\(member)"])
            }
        }
    }

    /// Runs `expireMembers` every `interval` until cancelled.
    func runExpiry(every interval: Duration = .milliseconds(250)) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            expireMembers()
        }
    }

    // MARK: Offsets

    /// Per-partition answers to an OffsetCommit; the whole request is checked against the
    /// member's generation first.
    func commit(group: String, memberID: String, generation: Int32, offsets: [TopicPartition: Int64]) async -> WireErrorCode {
        guard !group.isEmpty else { return .invalidGroupID }
        let state = groups[group] ?? ClassicGroup()
        let allowed = state.mayCommit(memberID: memberID, generation: generation)
        guard allowed == .none else { return allowed }
        if !memberID.isEmpty, var refreshed = groups[group] {
            _ = refreshed.heartbeat(memberID: memberID, generation: generation, now: .now)
            groups[group] = refreshed
        }
        do {
            try await broker.commitOffsets(group: group, offsets)
            return .none
        } catch {
            logger.error("offset commit failed", metadata: ["kafka.group": "\(group)", "error.message": "\(error)"])
            return .kafkaStorageError
        }
    }

    func committed(group: String) -> [TopicPartition: Int64] {
        broker.committedOffsets(group: group)
    }

    // MARK: Describe and list

    struct GroupDescription {
        var name: String
        var phase: String
        var protocolType: String
        var protocolName: String
        var members: [ClassicGroup.Member]
    }

    func describe(_ name: String) -> GroupDescription {
        guard let state = groups[name], !state.isEmpty else {
            let known = !broker.committedOffsets(group: name).isEmpty
            return GroupDescription(name: name, phase: known ? "Empty" : "Dead", protocolType: known ? "consumer" : "", protocolName: "", members: [])
        }
        return GroupDescription(
            name: name, phase: state.phase.rawValue, protocolType: state.protocolType ?? "", protocolName: state.protocolName ?? "",
            members: state.members)
    }

    /// Every group with members here or offsets in the store (in-process groups included).
    func list() async -> [(String, String)] {
        var result: [String: String] = [:]
        for name in (try? await broker.listGroups()) ?? [] { result[name] = "consumer" }
        for (name, state) in groups where !state.isEmpty { result[name] = state.protocolType ?? "consumer" }
        return result.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// JoinGroup or SyncGroup requests waiting for the rest of their group, per group and member.
/// Each wait has a token, so a cancelled request releases its own wait and not a later one
/// of the same member.
struct ParkedRequests<Response> {
    private var waiting: [String: [String: (token: UInt64, continuation: CheckedContinuation<Response, Never>)]] = [:]

    /// Groups with a request waiting (for tests).
    var groups: Int { waiting.count }

    mutating func park(_ group: String, _ member: String, token: UInt64, _ continuation: CheckedContinuation<Response, Never>) {
        waiting[group, default: [:]][member] = (token, continuation)
    }

    /// The member's wait, removed; with `token`, only if it is that wait.
    mutating func take(_ group: String, _ member: String, token: UInt64? = nil) -> CheckedContinuation<Response, Never>? {
        guard let parked = waiting[group]?[member], token == nil || parked.token == token else { return nil }
        waiting[group]?.removeValue(forKey: member)
        if waiting[group]?.isEmpty == true { waiting[group] = nil }
        return parked.continuation
    }
}
