// Fine-grained shared state under locks: 100 accounts, each behind its own lock, and 1,000 transfers
// between them run concurrently. Money is neither made nor lost.
import Synchronization

/// An account whose balance only changes under its lock.
final class Account: Sendable {
    let balance: Mutex<Int>
    init(_ balance: Int) { self.balance = Mutex(balance) }
}

/// Moves `amount` from one account to the other, one lock at a time.
func transfer(_ amount: Int, from: Account, to: Account) {
    from.balance.withLock { $0 -= amount }
    to.balance.withLock { $0 += amount }
}

@main
struct Bank {
    static func main() async {
        let accounts = (0..<100).map { _ in Account(1_000) }
        var seed: UInt64 = 11
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<1_000 {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                let (from, to, amount) = (Int(seed >> 40) % 100, Int(seed >> 20) % 100, Int(seed >> 8) % 50)
                group.addTask { transfer(amount, from: accounts[from], to: accounts[to]) }
            }
        }
        var balances: [Int] = []
        for account in accounts { balances.append(account.balance.withLock { $0 }) }
        let checksum = balances.reduce(0) { $0 &* 31 &+ $1 }
        print("bank: total \(balances.reduce(0, +)) in \(balances.count) accounts, balances checksum \(checksum)")
    }
}
