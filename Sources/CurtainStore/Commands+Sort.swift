import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension Commands {
    static let sortCommands: [CommandSpec] = [
        CommandSpec("sort", arity: -2, .write) { try sort(&$0, readOnly: false) },
        CommandSpec("sort_ro", arity: -2, []) { try sort(&$0, readOnly: true) },
        CommandSpec("memory", arity: -2, .container, memory),
    ]

    /// One element being sorted, with its weight (numeric) or comparison bytes (`ALPHA` with `BY`).
    private struct SortItem {
        var element: StoreBytes
        var score: Double = 0
        var comparable: StoreBytes?
    }

    /// `SORT key [BY pattern] [LIMIT offset count] [GET pattern …] [ASC|DESC] [ALPHA] [STORE destination]`,
    /// and `SORT_RO` (no `STORE`), with Redis 7.0's rules: a `BY` pattern without `*` means "do not sort"
    /// (except a set being stored, which is then sorted alphabetically), equal weights fall back to the
    /// elements' bytes, missing `BY` keys weigh 0.
    private static func sort(_ context: inout CommandContext, readOnly: Bool) throws(CommandError) {
        var descending = false
        var alpha = false
        var limitStart: Int64 = 0
        var limitCount: Int64 = -1
        var byIndex: Int?
        var dontSort = false
        var getIndexes: [Int] = []
        var storeIndex: Int?
        var index = 2
        while index < context.args.count {
            let remaining = context.args.count - index - 1
            if context.args.matches(index, "asc") {
                descending = false
            } else if context.args.matches(index, "desc") {
                descending = true
            } else if context.args.matches(index, "alpha") {
                alpha = true
            } else if context.args.matches(index, "limit") && remaining >= 2 {
                limitStart = try context.integer(index + 1)
                limitCount = try context.integer(index + 2)
                index += 2
            } else if !readOnly && context.args.matches(index, "store") && remaining >= 1 {
                storeIndex = index + 1
                index += 1
            } else if context.args.matches(index, "by") && remaining >= 1 {
                byIndex = index + 1
                dontSort = !context.args.withBytes(index + 1) { $0.contains(UInt8(ascii: "*")) }
                index += 1
            } else if context.args.matches(index, "get") && remaining >= 1 {
                getIndexes.append(index + 1)
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        let database = context.db
        var elements: [StoreBytes] = []
        var isSet = false
        if let entry = database.lookup(context.args.bytes(1)) {
            switch entry.value {
            case .list(let list): elements = Array(list.items)
            case .set(let set):
                elements = Array(set.members)
                isSet = true
            default: throw .wrongType
            }
        }
        if dontSort && isSet && storeIndex != nil {
            // Redis sorts a stored set anyway, so that replicas get the same list.
            dontSort = false
            alpha = true
            byIndex = nil
        }
        let count = Int64(elements.count)
        var start = min(max(limitStart, 0), count)
        let clampedCount = min(max(limitCount, -1), count)
        var end = clampedCount < 0 ? count - 1 : start + clampedCount - 1
        if start >= count {
            start = count - 1
            end = count - 2
        }
        if end >= count { end = count - 1 }
        if dontSort && !isSet && descending { elements.reverse() }

        var items = elements.map { SortItem(element: $0) }
        if !dontSort {
            var conversionError = false
            for position in items.indices {
                let weight: StoreBytes?
                if let byIndex {
                    weight = lookupByPattern(database, pattern: context.args.bytes(byIndex), element: items[position].element)
                } else {
                    weight = items[position].element
                }
                guard let weight else { continue }
                if alpha {
                    if byIndex != nil { items[position].comparable = weight }
                } else if let score = sortScore(weight) {
                    items[position].score = score
                } else {
                    conversionError = true
                }
            }
            if conversionError { throw .message("ERR One or more scores can't be converted into double") }
            let byPattern = byIndex != nil
            items.sort { first, second in
                var order = 0
                if !alpha {
                    if first.score != second.score {
                        order = first.score < second.score ? -1 : 1
                    } else {
                        order = compareBytes(first.element, second.element)
                    }
                } else if byPattern {
                    switch (first.comparable, second.comparable) {
                    case (nil, nil): order = 0
                    case (nil, _): order = -1
                    case (_, nil): order = 1
                    case (let a?, let b?): order = compareBytes(a, b)
                    }
                } else {
                    order = compareBytes(first.element, second.element)
                }
                return descending ? order > 0 : order < 0
            }
        }

        var output: [StoreBytes?] = []
        if end >= start {
            for position in Int(start)...Int(end) {
                let element = items[position].element
                if getIndexes.isEmpty {
                    output.append(element)
                } else {
                    for getIndex in getIndexes {
                        output.append(lookupByPattern(database, pattern: context.args.bytes(getIndex), element: element))
                    }
                }
            }
        }
        guard let storeIndex else {
            context.out.writeArrayHeader(output.count)
            for value in output {
                if let value { context.out.writeBulk(value) } else { context.out.writeNullBulk(resp3: context.resp3) }
            }
            return
        }
        let destination = context.args.bytes(storeIndex)
        if output.isEmpty {
            if database.lookup(destination) != nil {
                database.remove(destination)
                database.touch(destination)
                database.notify(.generic, "del", destination)
            }
        } else {
            database.set(destination, .list(ListValue(.init(output.map { $0 ?? StoreBytes.empty }))))
            database.touch(destination)
            database.notify(.list, "sortstore", destination)
            database.signalListPush(destination)
        }
        context.out.writeIntegerReply(output.count)
    }

    /// Redis' `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is replaced by the
    /// element and the string at that key (or, with `->field`, that hash field) is returned.
    private static func lookupByPattern(_ database: Database, pattern: StoreBytes, element: StoreBytes) -> StoreBytes? {
        let bytes = pattern.array
        if bytes == [UInt8(ascii: "#")] { return element }
        guard let star = bytes.firstIndex(of: UInt8(ascii: "*")) else { return nil }
        var field: [UInt8]? = nil
        var keyEnd = bytes.count
        if star + 1 < bytes.count {
            var position = star + 1
            while position + 1 < bytes.count {
                if bytes[position] == UInt8(ascii: "-") && bytes[position + 1] == UInt8(ascii: ">") && position + 2 < bytes.count {
                    field = Array(bytes[(position + 2)...])
                    keyEnd = position
                    break
                }
                position += 1
            }
        }
        let key = StoreBytes(Array(bytes[..<star]) + element.array + Array(bytes[(star + 1)..<keyEnd]))
        guard let entry = database.lookup(key) else { return nil }
        if let field {
            guard case .hash(let hash) = entry.value else { return nil }
            return hash.fields[StoreBytes(field)]
        }
        guard case .string(let value) = entry.value else { return nil }
        return value
    }

    /// A weight as Redis reads it with `strtod`: the whole string must be a number (empty counts as 0). Like
    /// Redis' C string, it ends at the first NUL byte.
    private static func sortScore(_ bytes: StoreBytes) -> Double? {
        return bytes.withUnsafeBytes { whole -> Double? in
            let raw = UnsafeRawBufferPointer(rebasing: whole[..<(whole.firstIndex(of: 0) ?? whole.count)])
            if raw.isEmpty { return 0 }
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: raw.count + 1) { scratch -> Double? in
                UnsafeMutableRawBufferPointer(scratch).copyMemory(from: raw)
                scratch[raw.count] = 0
                var end: UnsafeMutablePointer<CChar>? = nil
                errno = 0
                let value = strtod(scratch.baseAddress!, &end)
                guard let end, end == scratch.baseAddress! + raw.count, errno != ERANGE, !value.isNaN else { return nil }
                return value
            }
        }
    }

    /// `memcmp` order, shorter first on a common prefix.
    private static func compareBytes(_ a: StoreBytes, _ b: StoreBytes) -> Int {
        a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in
                let common = min(x.count, y.count)
                for i in 0..<common where x[i] != y[i] { return x[i] < y[i] ? -1 : 1 }
                return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
            }
        }
    }

    // MARK: MEMORY

    private static func memory(_ context: inout CommandContext) throws(CommandError) {
        if context.args.matches(1, "usage") {
            guard context.args.count == 3 || context.args.count == 5 else {
                throw .message("ERR wrong number of arguments for 'memory|usage' command")
            }
            if context.args.count == 5 {
                guard context.args.matches(3, "samples") else { throw .syntax }
                guard context.args.int64(4) != nil else { throw .notInteger }
            }
            let key = context.args.bytes(2)
            guard let entry = context.db.lookup(key) else {
                context.out.writeNullBulk(resp3: context.resp3)
                return
            }
            // An estimate, as Redis' is: the entry, the key and the value's own approximation.
            context.out.writeIntegerReply(64 + key.approximateHeapSize + entry.value.approximateSize)
        } else if context.args.matches(1, "help") && context.args.count == 2 {
            let lines = [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "USAGE <key> [SAMPLES <count>]", "    Return an estimate of the memory <key> and its value use.",
                "HELP", "    Print this help.",
            ]
            context.out.writeArrayHeader(lines.count)
            for line in lines {
                context.out.writeStaticString("+")
                context.out.writeString(line)
                context.out.writeCRLF()
            }
        } else {
            throw .unknownSubcommand(context.args.string(1), of: "memory")
        }
    }
}
