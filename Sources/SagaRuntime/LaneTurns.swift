/// The starvation guard between a worker's two lanes, as a plain state machine (no tasks, no
/// I/O). Each lane polls in a task of its own, the VIP lane at a higher priority. A flood of
/// VIP records (the VIP lane keeps finding full batches) could keep the standard lane from the
/// cooperative pool, so after `guardEvery` full VIP batches in a row with no standard batch
/// taken, the VIP lane waits for the standard lane to take its turn. A VIP batch that is not
/// full means the VIP topics are drained: VIP traffic is a trickle and owes no turn, so the
/// guard never adds latency to VIP orders that arrive one by one.
struct LaneTurns: Sendable {
    let guardEvery: Int
    /// Full VIP batches taken since the standard lane last took its turn.
    private(set) var fullVIPBatches = 0

    init(guardEvery: Int) {
        self.guardEvery = max(1, guardEvery)
    }

    /// Whether the VIP lane may poll now, or must wait for the standard lane's turn.
    var vipMayPoll: Bool { fullVIPBatches < guardEvery }

    /// The VIP lane took `count` records where it asked for at most `asked`.
    mutating func vipTook(_ count: Int, asked: Int) {
        if count >= asked { fullVIPBatches += 1 } else { fullVIPBatches = 0 }
    }

    /// The standard lane had its turn: it took a batch, found none waiting, or had no room to
    /// take one (then a turn would not move standard orders either).
    mutating func standardHadTurn() {
        fullVIPBatches = 0
    }
}
