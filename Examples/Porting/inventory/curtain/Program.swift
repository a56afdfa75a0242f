// An actor with state: orders are priced concurrently (a pure and costly quote) and booked into an actor
// that holds the stock and the takings.
import CurtainRemote

/// The price in cents of `quantity` units of `item`: a list price with a volume discount, worked out unit
/// by unit the slow way.
@Remote
func quote(item: String, quantity: Int) -> Int {
    let list = item.utf8.reduce(0) { $0 &* 31 &+ Int($1) } % 900 + 100
    var total = 0.0
    for unit in 0..<quantity {
        var discount = 0.0
        for tier in 1...2_000 where unit >= tier * 5 { discount += 0.0001 }
        total += Double(list) * (1 - min(discount, 0.3))
    }
    return Int(total + 0.5)
}

/// Stock and takings, changed one booking at a time.
actor Inventory {
    private var stock: [String: Int]
    private var takings = 0
    private var booked = 0

    init(stock: [String: Int]) { self.stock = stock }

    /// Books an order if the stock covers it.
    func book(_ item: String, quantity: Int, price: Int) -> Bool {
        guard let left = stock[item], left >= quantity else { return false }
        stock[item] = left - quantity
        takings += price
        booked += 1
        return true
    }

    func report() -> String {
        "\(booked) orders booked, takings \(takings) cents, stock left " + stock.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}

@main
struct Shop {
    static func main() async {
        await Cloud.start()
        let items = ["bolt", "nut", "washer", "hinge", "bracket"]
        let inventory = Inventory(stock: Dictionary(uniqueKeysWithValues: items.map { ($0, 100_000) }))
        await withTaskGroup(of: Void.self) { group in
            for order in 0..<400 {
                let (item, quantity) = (items[order % items.count], 20 + order % 37)
                group.addTask {
                    let price = await $quote(item: item, quantity: quantity)
                    _ = await inventory.book(item, quantity: quantity, price: price)
                }
            }
        }
        print(await inventory.report())
    }
}
