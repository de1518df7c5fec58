/// One consumer group under Kafka's classic group protocol (JoinGroup / SyncGroup /
/// Heartbeat / LeaveGroup), as a plain state machine: no I/O, no clock of its own. Each event
/// returns the responses it completes, for the caller's member and for members whose
/// JoinGroup or SyncGroup is parked waiting for the others.
///
/// The phases are Kafka's: `empty` → (a join) `preparingRebalance` → (every known member has
/// rejoined, or the rebalance timeout passed and stragglers were dropped)
/// `completingRebalance` → (the leader's SyncGroup with the assignment) `stable`. Clients
/// compute the assignment (the leader does, from every member's subscription); the
/// coordinator only relays it, which is why any client-side assignor works.
struct ClassicGroup {
    enum Phase: String {
        case empty = "Empty"
        case preparingRebalance = "PreparingRebalance"
        case completingRebalance = "CompletingRebalance"
        case stable = "Stable"
    }

    struct Member {
        let id: String
        var clientID: String
        var clientHost: String
        var sessionTimeout: Duration
        var rebalanceTimeout: Duration
        var protocols: [(name: String, metadata: [UInt8])]
        var lastHeard: ContinuousClock.Instant
        /// A JoinGroup of this member is parked until the rebalance completes.
        var awaitingJoin = false
        /// A SyncGroup of this member is parked until the leader sends the assignment.
        var awaitingSync = false
        var assignment: [UInt8] = []

        func metadata(for protocolName: String?) -> [UInt8] {
            protocols.first { $0.name == protocolName }?.metadata ?? []
        }
    }

    struct JoinResponse: Equatable {
        var error: WireErrorCode
        var generation: Int32
        var protocolName: String
        var leader: String
        var memberID: String
        /// Every member with its subscription metadata, for the leader only.
        var members: [JoinedMember]

        /// A join turned down (or a parked one ended) with `error`.
        static func refused(_ error: WireErrorCode, memberID: String) -> JoinResponse {
            JoinResponse(error: error, generation: -1, protocolName: "", leader: "", memberID: memberID, members: [])
        }
    }

    struct JoinedMember: Equatable {
        var id: String
        var metadata: [UInt8]
    }

    struct SyncResponse: Equatable {
        var error: WireErrorCode
        var assignment: [UInt8]
    }

    /// A parked request completed by an event.
    enum Completion: Equatable {
        case join(memberID: String, JoinResponse)
        case sync(memberID: String, SyncResponse)
    }

    private(set) var phase: Phase = .empty
    private(set) var generation: Int32 = 0
    private(set) var protocolType: String?
    private(set) var protocolName: String?
    private(set) var leader: String?
    /// Members in join order (the first to join leads when there is no leader).
    private(set) var members: [Member] = []
    private(set) var rebalanceDeadline: ContinuousClock.Instant?

    var isEmpty: Bool { members.isEmpty }

    func member(_ id: String) -> Member? { members.first { $0.id == id } }
    private func index(_ id: String) -> Int? { members.firstIndex { $0.id == id } }

    // MARK: JoinGroup

    struct JoinRequest {
        /// Empty for a member joining for the first time: the coordinator names it.
        var memberID: String
        var clientID: String
        var clientHost: String
        var sessionTimeout: Duration
        var rebalanceTimeout: Duration
        var protocolType: String
        var protocols: [(name: String, metadata: [UInt8])]
    }

    /// Adds or refreshes a member and starts (or joins) a rebalance. `newMemberID` names a
    /// first-time member. Returns the caller's response when it is decided now (an error, or
    /// the rebalance completed by this join), and every parked request this completes.
    mutating func join(_ request: JoinRequest, newMemberID: String, now: ContinuousClock.Instant) -> (JoinResponse?, [Completion]) {
        func refused(_ error: WireErrorCode) -> (JoinResponse?, [Completion]) {
            (.refused(error, memberID: request.memberID), [])
        }
        guard !request.protocols.isEmpty, !request.protocolType.isEmpty else { return refused(.inconsistentGroupProtocol) }
        if !members.isEmpty {
            guard request.protocolType == protocolType else { return refused(.inconsistentGroupProtocol) }
            let names = Set(request.protocols.map(\.name))
            let common = members.filter { $0.id != request.memberID }.reduce(names) { $0.intersection($1.protocols.map(\.name)) }
            guard !common.isEmpty else { return refused(.inconsistentGroupProtocol) }
        }
        let id: String
        if request.memberID.isEmpty {
            id = newMemberID
            members.append(Member(
                id: id, clientID: request.clientID, clientHost: request.clientHost, sessionTimeout: request.sessionTimeout,
                rebalanceTimeout: request.rebalanceTimeout, protocols: request.protocols, lastHeard: now))
        } else {
            guard index(request.memberID) != nil else { return refused(.unknownMemberID) }
            id = request.memberID
        }
        let i = index(id)!
        members[i].protocols = request.protocols
        members[i].sessionTimeout = request.sessionTimeout
        members[i].rebalanceTimeout = request.rebalanceTimeout
        members[i].lastHeard = now
        members[i].awaitingJoin = true
        protocolType = request.protocolType
        var completions = startRebalance(now: now)
        completions += completeJoinIfReady()
        return take(joinOf: id, from: completions)
    }

    /// Moves to `preparingRebalance`; parked SyncGroups are answered REBALANCE_IN_PROGRESS
    /// (their members rejoin).
    private mutating func startRebalance(now: ContinuousClock.Instant) -> [Completion] {
        guard phase != .preparingRebalance else { return [] }
        var completions: [Completion] = []
        for i in members.indices where members[i].awaitingSync {
            members[i].awaitingSync = false
            completions.append(.sync(memberID: members[i].id, SyncResponse(error: .rebalanceInProgress, assignment: [])))
        }
        phase = .preparingRebalance
        let longest = members.map(\.rebalanceTimeout).max() ?? .zero
        rebalanceDeadline = now + longest
        return completions
    }

    /// Completes the join phase once every member has rejoined: a new generation, a protocol
    /// every member supports, a leader, and a JoinGroup response for each member.
    private mutating func completeJoinIfReady() -> [Completion] {
        guard phase == .preparingRebalance, members.allSatisfy(\.awaitingJoin) else { return [] }
        rebalanceDeadline = nil
        generation += 1
        guard !members.isEmpty else {
            phase = .empty
            protocolName = nil
            leader = nil
            protocolType = nil
            return []
        }
        if leader.flatMap(index) == nil { leader = members[0].id }
        let leaderMember = member(leader!)!
        // The leader's most preferred protocol that every member supports.
        protocolName = leaderMember.protocols.map(\.name).first { name in members.allSatisfy { $0.protocols.contains { $0.name == name } } }
        phase = .completingRebalance
        let everyone = members.map { JoinedMember(id: $0.id, metadata: $0.metadata(for: protocolName)) }
        var completions: [Completion] = []
        for i in members.indices {
            members[i].awaitingJoin = false
            members[i].assignment = []
            let isLeader = members[i].id == leader
            completions.append(.join(memberID: members[i].id, JoinResponse(
                error: .none, generation: generation, protocolName: protocolName ?? "", leader: leader!,
                memberID: members[i].id, members: isLeader ? everyone : [])))
        }
        return completions
    }

    private func take(joinOf id: String, from completions: [Completion]) -> (JoinResponse?, [Completion]) {
        var mine: JoinResponse?
        var others: [Completion] = []
        for completion in completions {
            if case .join(id, let response) = completion { mine = response } else { others.append(completion) }
        }
        return (mine, others)
    }

    // MARK: SyncGroup

    /// The leader's SyncGroup carries every member's assignment and makes the group stable;
    /// a follower's waits for it.
    mutating func sync(memberID: String, generation: Int32, assignments: [String: [UInt8]], now: ContinuousClock.Instant) -> (SyncResponse?, [Completion]) {
        guard let i = index(memberID) else { return (SyncResponse(error: .unknownMemberID, assignment: []), []) }
        guard generation == self.generation else { return (SyncResponse(error: .illegalGeneration, assignment: []), []) }
        members[i].lastHeard = now
        switch phase {
        case .empty, .preparingRebalance:
            return (SyncResponse(error: .rebalanceInProgress, assignment: []), [])
        case .stable:
            return (SyncResponse(error: .none, assignment: members[i].assignment), [])
        case .completingRebalance:
            members[i].awaitingSync = true
            guard memberID == leader else { return (nil, []) }
            var mine: SyncResponse?
            var completions: [Completion] = []
            for j in members.indices {
                members[j].assignment = assignments[members[j].id] ?? []
                if members[j].awaitingSync {
                    members[j].awaitingSync = false
                    let response = SyncResponse(error: .none, assignment: members[j].assignment)
                    if members[j].id == memberID { mine = response } else { completions.append(.sync(memberID: members[j].id, response)) }
                }
            }
            phase = .stable
            return (mine, completions)
        }
    }

    // MARK: Heartbeat, LeaveGroup, expiry

    /// Keeps a member alive; REBALANCE_IN_PROGRESS tells it to rejoin.
    mutating func heartbeat(memberID: String, generation: Int32, now: ContinuousClock.Instant) -> WireErrorCode {
        guard let i = index(memberID) else { return .unknownMemberID }
        guard generation == self.generation else { return .illegalGeneration }
        members[i].lastHeard = now
        return phase == .preparingRebalance ? .rebalanceInProgress : .none
    }

    mutating func leave(memberID: String, now: ContinuousClock.Instant) -> (WireErrorCode, [Completion]) {
        guard index(memberID) != nil else { return (.unknownMemberID, []) }
        return (.none, remove([memberID], now: now))
    }

    /// Whether a commit from this member at this generation may be stored now. A group with no
    /// members accepts commits from outside any generation (tools, manually assigned consumers).
    func mayCommit(memberID: String, generation: Int32) -> WireErrorCode {
        if generation < 0 && memberID.isEmpty {
            return members.isEmpty ? .none : .illegalGeneration
        }
        guard index(memberID) != nil else { return .unknownMemberID }
        guard generation == self.generation else { return .illegalGeneration }
        return phase == .completingRebalance ? .rebalanceInProgress : .none
    }

    /// Drops members silent past their session timeout (a member parked in JoinGroup is
    /// waiting, not silent) and, past the rebalance timeout, members that did not rejoin.
    mutating func expire(now: ContinuousClock.Instant) -> (expired: [String], [Completion]) {
        var gone = members.filter { !$0.awaitingJoin && $0.lastHeard + $0.sessionTimeout < now }.map(\.id)
        if phase == .preparingRebalance, let deadline = rebalanceDeadline, now >= deadline {
            gone += members.filter { !$0.awaitingJoin && !gone.contains($0.id) }.map(\.id)
        }
        guard !gone.isEmpty else { return ([], []) }
        return (gone, remove(gone, now: now))
    }

    private mutating func remove(_ ids: [String], now: ContinuousClock.Instant) -> [Completion] {
        var completions: [Completion] = []
        for id in ids {
            guard let i = index(id) else { continue }
            let member = members.remove(at: i)
            if member.awaitingJoin {
                completions.append(.join(memberID: id, .refused(.unknownMemberID, memberID: id)))
            }
            if member.awaitingSync {
                completions.append(.sync(memberID: id, SyncResponse(error: .unknownMemberID, assignment: [])))
            }
            if leader == id { leader = nil }
        }
        if members.isEmpty && phase != .preparingRebalance {
            phase = .empty
            generation += 1
            protocolName = nil
            protocolType = nil
            rebalanceDeadline = nil
            return completions
        }
        completions += startRebalance(now: now)
        completions += completeJoinIfReady()
        return completions
    }
}
