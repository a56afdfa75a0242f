import NIOCore

extension Commands {
    static let stringCommands: [CommandSpec] = [
        CommandSpec("get", arity: 2, [], get),
        CommandSpec("set", arity: -3, .write, set),
        CommandSpec("setnx", arity: 3, .write, setnx),
        CommandSpec("setex", arity: 4, .write) { try setWithExpiry(&$0, milliseconds: false) },
        CommandSpec("psetex", arity: 4, .write) { try setWithExpiry(&$0, milliseconds: true) },
        CommandSpec("getdel", arity: 2, .write, getdel),
        CommandSpec("getset", arity: 3, .write, getset),
        CommandSpec("getex", arity: -2, .write, getex),
        CommandSpec("incr", arity: 2, .write) { try incrementBy(&$0, 1) },
        CommandSpec("decr", arity: 2, .write) { try incrementBy(&$0, -1) },
        CommandSpec("incrby", arity: 3, .write) { try incrementBy(&$0, try $0.integer(2)) },
        CommandSpec("decrby", arity: 3, .write, decrby),
        CommandSpec("incrbyfloat", arity: 3, .write, incrbyfloat),
        CommandSpec("append", arity: 3, .write, append),
        CommandSpec("strlen", arity: 2, [], strlen),
        CommandSpec("getrange", arity: 4, [], getrange),
        CommandSpec("substr", arity: 4, [], getrange),
        CommandSpec("setrange", arity: 4, .write, setrange),
        CommandSpec("mget", arity: -2, [], mget),
        CommandSpec("mset", arity: -3, .write, mset),
        CommandSpec("msetnx", arity: -3, .write, msetnx),
        CommandSpec("setbit", arity: 4, .write, setbit),
        CommandSpec("getbit", arity: 3, [], getbit),
        CommandSpec("lcs", arity: -3, [], lcs),
        CommandSpec("bitcount", arity: -2, [], bitcount),
        CommandSpec("bitpos", arity: -3, [], bitpos),
        CommandSpec("bitop", arity: -4, .write, bitop),
    ]

    /// The inclusive bit range of `BITCOUNT`/`BITPOS` `start end [BYTE|BIT]` over a string of `length` bytes,
    /// with Redis' negative-index and clamping rules; `nil` when empty.
    private static func bitRange(length: Int, start: Int64, end: Int64, inBits: Bool) -> (first: Int64, last: Int64)? {
        let total = Int64(length) * (inBits ? 8 : 1)
        var start = start < 0 ? total + start : start
        var end = end < 0 ? total + end : end
        if start < 0 { start = 0 }
        if end < 0 { end = 0 }
        if end >= total { end = total - 1 }
        guard start <= end else { return nil }
        return inBits ? (start, end) : (start * 8, end * 8 + 7)
    }

    /// Parses `BYTE`/`BIT` at argument `index`.
    private static func bitUnit(_ context: CommandContext, _ index: Int) throws(CommandError) -> Bool {
        if context.args.matches(index, "bit") { return true }
        if context.args.matches(index, "byte") { return false }
        throw .syntax
    }

    private static func bitcount(_ context: inout CommandContext) throws(CommandError) {
        guard let value = try context.stringValue(context.args.bytes(1)) else {
            context.out.writeIntegerReply(0)
            return
        }
        var range: (first: Int64, last: Int64)? = value.count > 0 ? (0, Int64(value.count) * 8 - 1) : nil
        if context.args.count == 4 || context.args.count == 5 {
            let start = try context.integer(2)
            let end = try context.integer(3)
            if start < 0 && end < 0 && start > end {
                context.out.writeIntegerReply(0)
                return
            }
            let inBits = context.args.count == 5 ? try bitUnit(context, 4) : false
            range = bitRange(length: value.count, start: start, end: end, inBits: inBits)
        } else if context.args.count != 2 {
            throw .syntax
        }
        guard let range else {
            context.out.writeIntegerReply(0)
            return
        }
        let count = value.withUnsafeBytes { bytes -> Int in
            var count = 0
            var bit = range.first
            while bit <= range.last {
                if bit & 7 == 0 && bit + 7 <= range.last {
                    count += bytes[Int(bit >> 3)].nonzeroBitCount
                    bit += 8
                } else {
                    if bytes[Int(bit >> 3)] & (UInt8(0x80) >> UInt8(bit & 7)) != 0 { count += 1 }
                    bit += 1
                }
            }
            return count
        }
        context.out.writeIntegerReply(count)
    }

    private static func bitpos(_ context: inout CommandContext) throws(CommandError) {
        guard let bit = context.args.int64(2) else { throw .notInteger }
        guard bit == 0 || bit == 1 else { throw .message("ERR The bit argument must be 1 or 0.") }
        guard let value = try context.stringValue(context.args.bytes(1)) else {
            context.out.writeIntegerReply(bit == 1 ? -1 : 0)
            return
        }
        guard context.args.count <= 6 else { throw .syntax }
        var range: (first: Int64, last: Int64)? = value.count > 0 ? (0, Int64(value.count) * 8 - 1) : nil
        let endGiven = context.args.count >= 5
        if context.args.count >= 4 {
            let start = try context.integer(3)
            let inBits = context.args.count == 6 ? try bitUnit(context, 5) : false
            let total = Int64(value.count) * (inBits ? 8 : 1)
            let end = endGiven ? try context.integer(4) : total - 1
            range = bitRange(length: value.count, start: start, end: end, inBits: inBits)
        }
        guard let range else {
            context.out.writeIntegerReply(-1)
            return
        }
        let wanted: UInt8 = bit == 1 ? 1 : 0
        let found = value.withUnsafeBytes { bytes -> Int64? in
            var position = range.first
            while position <= range.last {
                let byte = bytes[Int(position >> 3)]
                // Skip whole bytes that cannot hold the bit.
                if position & 7 == 0 && position + 7 <= range.last && byte == (wanted == 1 ? 0x00 : 0xFF) {
                    position += 8
                    continue
                }
                if (byte >> UInt8(7 - (position & 7))) & 1 == wanted { return position }
                position += 1
            }
            return nil
        }
        if let found {
            context.out.writeRESPInteger(found)
        } else if bit == 0 && !endGiven {
            // Looking for a clear bit in a range of set bits without an end: the bit right after the string.
            context.out.writeRESPInteger(range.last + 1)
        } else {
            context.out.writeIntegerReply(-1)
        }
    }

    private static func bitop(_ context: inout CommandContext) throws(CommandError) {
        enum Operation { case and, or, xor, not }
        let operation: Operation
        if context.args.matches(1, "and") {
            operation = .and
        } else if context.args.matches(1, "or") {
            operation = .or
        } else if context.args.matches(1, "xor") {
            operation = .xor
        } else if context.args.matches(1, "not") {
            operation = .not
        } else {
            throw .syntax
        }
        if operation == .not && context.args.count != 4 {
            throw .message("ERR BITOP NOT must be called with a single source key.")
        }
        var sources: [[UInt8]] = []
        for index in 3..<context.args.count {
            sources.append(try context.stringValue(context.args.bytes(index))?.array ?? [])
        }
        let length = sources.map(\.count).max() ?? 0
        var result = [UInt8](repeating: 0, count: length)
        for position in 0..<length {
            var byte: UInt8 = position < sources[0].count ? sources[0][position] : 0
            if operation == .not {
                byte = ~byte
            } else {
                for source in sources.dropFirst() {
                    let other: UInt8 = position < source.count ? source[position] : 0
                    switch operation {
                    case .and: byte &= other
                    case .or: byte |= other
                    default: byte ^= other
                    }
                }
            }
            result[position] = byte
        }
        let destination = context.args.bytes(2)
        let database = context.db
        if result.isEmpty {
            if database.lookup(destination) != nil {
                database.remove(destination)
                database.touch(destination)
                database.notify(.generic, "del", destination)
            }
        } else {
            database.set(destination, .string(StoreBytes(result)))
            database.noteStringEncoding(destination, .raw)
            database.touch(destination)
            database.notify(.string, "set", destination)
        }
        context.out.writeIntegerReply(result.count)
    }

    // MARK: Bits

    /// A bit offset argument: 0 ≤ offset < 8 × `proto-max-bulk-len`.
    private static func bitOffset(_ context: CommandContext, _ index: Int) throws(CommandError) -> Int {
        guard let offset = context.args.int64(index), offset >= 0, offset >> 3 < Int64(maxStringLength) else {
            throw .message("ERR bit offset is not an integer or out of range")
        }
        return Int(offset)
    }

    private static func setbit(_ context: inout CommandContext) throws(CommandError) {
        let offset = try bitOffset(context, 2)
        guard let bit = context.args.int64(3), bit == 0 || bit == 1 else {
            throw .message("ERR bit is not an integer or out of range")
        }
        let key = context.args.bytes(1)
        let existing = try context.stringValue(key)
        var bytes = existing?.array ?? []
        let byteIndex = offset >> 3
        // As in Redis, only a created or grown string, or a flipped bit, counts as a modification.
        var changed = existing == nil
        if bytes.count <= byteIndex {
            bytes.append(contentsOf: repeatElement(0, count: byteIndex + 1 - bytes.count))
            changed = true
        }
        let mask = UInt8(0x80) >> UInt8(offset & 7)
        let previous = bytes[byteIndex] & mask != 0 ? 1 : 0
        if bit == 1 { bytes[byteIndex] |= mask } else { bytes[byteIndex] &= ~mask }
        if changed || previous != Int(bit) {
            context.db.replaceStringInPlace(key, StoreBytes(bytes))
            context.db.touch(key)
            context.notify(.string, "setbit", key)
        } else {
            context.db.noteStringEncoding(key, .raw)  // Redis unshares (and so un-encodes) it all the same
        }
        context.out.writeIntegerReply(previous)
    }

    private static func getbit(_ context: inout CommandContext) throws(CommandError) {
        let offset = try bitOffset(context, 2)
        guard let value = try context.stringValue(context.args.bytes(1)), offset >> 3 < value.count else {
            context.out.writeIntegerReply(0)
            return
        }
        let byte = value.withUnsafeBytes { $0[offset >> 3] }
        context.out.writeIntegerReply(byte & (UInt8(0x80) >> UInt8(offset & 7)) != 0 ? 1 : 0)
    }

    // MARK: LCS

    private static func lcs(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        let first = database.lookup(context.args.bytes(1))
        let second = database.lookup(context.args.bytes(2))
        var a: [UInt8] = []
        var b: [UInt8] = []
        for (entry, target) in [(first, 0), (second, 1)] {
            guard let entry else { continue }
            guard case .string(let bytes) = entry.value else {
                throw .message("ERR The specified keys must contain string values")
            }
            if target == 0 { a = bytes.array } else { b = bytes.array }
        }
        var wantLength = false
        var wantIndexes = false
        var withMatchLength = false
        var minimumMatch: Int64 = 0
        var index = 3
        while index < context.args.count {
            if context.args.matches(index, "idx") {
                wantIndexes = true
            } else if context.args.matches(index, "len") {
                wantLength = true
            } else if context.args.matches(index, "withmatchlen") {
                withMatchLength = true
            } else if context.args.matches(index, "minmatchlen") && index + 1 < context.args.count {
                minimumMatch = max(try context.integer(index + 1), 0)
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        if wantLength && wantIndexes {
            throw .message("ERR If you want both the length and indexes, please just use IDX.")
        }
        let columns = b.count + 1
        // The table Redis would allocate: refused beyond proto-max-bulk-len, as Redis does.
        let (cells, overflow) = (a.count + 1).multipliedReportingOverflow(by: columns)
        guard !overflow, cells <= maxStringLength / 4 else {
            throw .message("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        }
        var table = [UInt32](repeating: 0, count: cells)
        if !a.isEmpty && !b.isEmpty {
            for i in 1...a.count {
                for j in 1...b.count {
                    if a[i - 1] == b[j - 1] {
                        table[i * columns + j] = table[(i - 1) * columns + j - 1] + 1
                    } else {
                        table[i * columns + j] = max(table[(i - 1) * columns + j], table[i * columns + j - 1])
                    }
                }
            }
        }
        let total = Int(table[a.count * columns + b.count])
        if wantLength {
            context.out.writeIntegerReply(total)
            return
        }
        // Walk back from the end, collecting the common string and the matching ranges (latest first).
        var common = [UInt8](repeating: 0, count: total)
        var ranges: [(aStart: Int, aEnd: Int, bStart: Int, bEnd: Int)] = []
        var i = a.count
        var j = b.count
        var position = total
        var current: (aStart: Int, aEnd: Int, bStart: Int, bEnd: Int)? = nil
        func emit() {
            if let range = current, minimumMatch == 0 || Int64(range.aEnd - range.aStart + 1) >= minimumMatch {
                ranges.append(range)
            }
            current = nil
        }
        while i > 0 && j > 0 {
            if a[i - 1] == b[j - 1] {
                common[position - 1] = a[i - 1]
                position -= 1
                if var range = current, range.aStart == i && range.bStart == j {
                    range.aStart -= 1
                    range.bStart -= 1
                    current = range
                } else {
                    emit()
                    current = (i - 1, i - 1, j - 1, j - 1)
                }
                i -= 1
                j -= 1
            } else {
                if table[(i - 1) * columns + j] > table[i * columns + j - 1] { i -= 1 } else { j -= 1 }
                emit()
            }
        }
        emit()
        guard wantIndexes else {
            context.out.writeBulk(StoreBytes(common))
            return
        }
        context.out.writeMapHeader(2, resp3: context.resp3)
        context.out.writeBulk("matches")
        context.out.writeArrayHeader(ranges.count)
        for range in ranges {
            context.out.writeArrayHeader(withMatchLength ? 3 : 2)
            context.out.writeArrayHeader(2)
            context.out.writeIntegerReply(range.aStart)
            context.out.writeIntegerReply(range.aEnd)
            context.out.writeArrayHeader(2)
            context.out.writeIntegerReply(range.bStart)
            context.out.writeIntegerReply(range.bEnd)
            if withMatchLength { context.out.writeIntegerReply(range.aEnd - range.aStart + 1) }
        }
        context.out.writeBulk("len")
        context.out.writeIntegerReply(total)
    }

    /// The largest string value (Redis' `proto-max-bulk-len`).
    static let maxStringLength = 512 * 1024 * 1024

    // MARK: GET / SET

    private static func get(_ context: inout CommandContext) throws(CommandError) {
        if let value = try context.stringValue(context.args.bytes(1)) {
            context.out.writeBulk(value)
        } else {
            context.out.writeNullBulk(resp3: context.resp3)
        }
    }

    /// How `SET` treats an existing key's expiry.
    private enum ExpiryOption {
        case clear
        case keep
        case at(Int64)
    }

    private static func set(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        if context.args.count == 3 {
            // The common case: no options.
            database.set(key, .string(context.args.bytes(2)))
            database.touch(key)
            database.notify(.string, "set", key)
            context.out.writeOK()
            return
        }
        var onlyIfAbsent = false
        var onlyIfPresent = false
        var returnOld = false
        var expiry = ExpiryOption.clear
        var hasExpiry = false
        var expiryArgument: (index: Int, unit: (milliseconds: Bool, absolute: Bool))? = nil
        var index = 3
        let count = context.args.count
        while index < count {
            let hasNext = index + 1 < count
            if context.args.matches(index, "nx") && !onlyIfPresent {
                onlyIfAbsent = true
            } else if context.args.matches(index, "xx") && !onlyIfAbsent {
                onlyIfPresent = true
            } else if context.args.matches(index, "get") {
                returnOld = true
            } else if context.args.matches(index, "keepttl") && !hasExpiry {
                expiry = .keep
                hasExpiry = true
            } else if hasNext && !hasExpiry, let unit = expiryUnit(context.args, index) {
                expiryArgument = (index + 1, unit)
                hasExpiry = true
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        // As in Redis, every option is parsed (a syntax error wins) before the time is checked.
        if let expiryArgument {
            expiry = .at(try absoluteExpiry(context, expiryArgument.index, unit: expiryArgument.unit, command: "set"))
        }
        let existing = database.lookup(key)
        var old: StoreBytes? = nil
        if returnOld, let existing {
            guard case .string(let bytes) = existing.value else { throw .wrongType }
            old = bytes
        }
        if (onlyIfAbsent && existing != nil) || (onlyIfPresent && existing == nil) {
            if returnOld, let old {
                context.out.writeBulk(old)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
            return
        }
        let value = StoreValue.string(context.args.bytes(2))
        switch expiry {
        case .clear:
            database.set(key, value)
        case .keep:
            database.set(key, value, expiresAt: existing?.expiresAt ?? 0)
        case .at(let time):
            if time <= context.store.now {
                database.remove(key)
            } else {
                database.set(key, value, expiresAt: time)
            }
        }
        database.touch(key)
        database.notify(.string, "set", key)
        if case .at(let time) = expiry {
            database.notify(.generic, time <= context.store.now ? "del" : "expire", key)
        }
        if returnOld {
            if let old { context.out.writeBulk(old) } else { context.out.writeNullBulk(resp3: context.resp3) }
        } else {
            context.out.writeOK()
        }
    }

    /// The unit of an `EX`/`PX`/`EXAT`/`PXAT` option: (milliseconds?, absolute?).
    static func expiryUnit(_ args: CommandArguments, _ index: Int) -> (milliseconds: Bool, absolute: Bool)? {
        if args.matches(index, "ex") { return (false, false) }
        if args.matches(index, "px") { return (true, false) }
        if args.matches(index, "exat") { return (false, true) }
        if args.matches(index, "pxat") { return (true, true) }
        return nil
    }

    /// Parses an expiry argument into absolute Unix milliseconds, with Redis' checks and messages.
    static func absoluteExpiry(
        _ context: CommandContext,
        _ index: Int,
        unit: (milliseconds: Bool, absolute: Bool),
        command: String
    ) throws(CommandError) -> Int64 {
        let raw = try context.integer(index)
        guard raw > 0, unit.milliseconds || raw <= Int64.max / 1000 else { throw .invalidExpireTime(command) }
        let milliseconds = unit.milliseconds ? raw : raw * 1000
        if unit.absolute { return milliseconds }
        let now = context.store.now
        guard milliseconds <= Int64.max - now else { throw .invalidExpireTime(command) }
        return now + milliseconds
    }

    private static func setnx(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        if database.lookup(key) != nil {
            context.out.writeIntegerReply(0)
            return
        }
        database.set(key, .string(context.args.bytes(2)))
        database.touch(key)
        database.notify(.string, "set", key)
        context.out.writeIntegerReply(1)
    }

    private static func setWithExpiry(_ context: inout CommandContext, milliseconds: Bool) throws(CommandError) {
        let name = milliseconds ? "psetex" : "setex"
        let time = try absoluteExpiry(context, 2, unit: (milliseconds, false), command: name)
        let key = context.args.bytes(1)
        context.db.set(key, .string(context.args.bytes(3)), expiresAt: time)
        context.db.touch(key)
        context.notify(.string, "set", key)
        context.notify(.generic, "expire", key)
        context.out.writeOK()
    }

    private static func getdel(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        guard let value = try context.stringValue(key) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        context.db.remove(key)
        context.db.touch(key)
        context.notify(.generic, "del", key)
        context.out.writeBulk(value)
    }

    private static func getset(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let old = try context.stringValue(key)
        context.db.set(key, .string(context.args.bytes(2)))
        context.db.touch(key)
        context.notify(.string, "set", key)
        if let old { context.out.writeBulk(old) } else { context.out.writeNullBulk(resp3: context.resp3) }
    }

    private static func getex(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        var expiryOption: (index: Int, unit: (milliseconds: Bool, absolute: Bool))? = nil
        var persist = false
        var index = 2
        while index < context.args.count {
            if context.args.matches(index, "persist") && expiryOption == nil && !persist {
                persist = true
            } else if index + 1 < context.args.count && expiryOption == nil && !persist,
                      let unit = expiryUnit(context.args, index) {
                expiryOption = (index + 1, unit)
                index += 1
            } else {
                throw .syntax
            }
            index += 1
        }
        // As in Redis, the time is checked after the key: a missing key answers nil whatever it says.
        guard let value = try context.stringValue(key) else {
            context.out.writeNullBulk(resp3: context.resp3)
            return
        }
        var expiry: Int64? = nil
        if let expiryOption {
            expiry = try absoluteExpiry(context, expiryOption.index, unit: expiryOption.unit, command: "getex")
        }
        let database = context.db
        if let expiry {
            if expiry <= context.store.now {
                database.remove(key)
                database.notify(.generic, "del", key)
            } else {
                database.setExpiry(key, at: expiry)
                database.notify(.generic, "expire", key)
            }
            database.touch(key)
        } else if persist, database.removeExpiry(key) {
            database.touch(key)
            database.notify(.generic, "persist", key)
        }
        context.out.writeBulk(value)
    }

    // MARK: Counters

    private static func decrby(_ context: inout CommandContext) throws(CommandError) {
        let decrement = try context.integer(2)
        guard decrement != Int64.min else { throw .message("ERR decrement would overflow") }
        try incrementBy(&context, -decrement)
    }

    private static func incrementBy(_ context: inout CommandContext, _ increment: Int64) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        var current: Int64 = 0
        if let value = try context.stringValue(key) {
            guard let parsed = value.withUnsafeBytes({ Number.parseInt64($0) }) else { throw .notInteger }
            current = parsed
        }
        let (result, overflow) = current.addingReportingOverflow(increment)
        if overflow { throw .overflow }
        database.replaceValue(key, .string(StoreBytes(decimal: result)))
        database.touch(key)
        database.notify(.string, "incrby", key)
        context.out.writeRESPInteger(result)
    }

    private static func incrbyfloat(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        var current: Number.WideFloat = 0
        if let value = try context.stringValue(key) {
            guard let parsed = value.withUnsafeBytes({ Number.parseWideFloat($0) }) else { throw .notFloat }
            current = parsed
        }
        guard let increment = context.args.withBytes(2, { Number.parseWideFloat($0) }) else { throw .notFloat }
        let result = current + increment
        guard result.isFinite else { throw .message("ERR increment would produce NaN or Infinity") }
        let formatted = Number.formatHuman(result)
        context.db.replaceValue(key, .string(formatted))
        context.db.noteStringEncoding(key, .text)
        context.db.touch(key)
        context.notify(.string, "incrbyfloat", key)
        context.out.writeBulk(formatted)
    }

    // MARK: Byte strings

    private static func append(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let database = context.db
        guard let existing = try context.stringValue(key) else {
            let value = context.args.bytes(2)
            database.set(key, .string(value))
            database.touch(key)
            database.notify(.string, "append", key)
            context.out.writeIntegerReply(value.count)
            return
        }
        guard existing.count + context.args.length(2) <= maxStringLength else {
            throw .message("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        var bytes = existing.array
        context.args.withBytes(2) { bytes.append(contentsOf: $0) }
        let length = bytes.count
        database.replaceStringInPlace(key, StoreBytes(bytes))
        database.touch(key)
        database.notify(.string, "append", key)
        context.out.writeIntegerReply(length)
    }

    private static func strlen(_ context: inout CommandContext) throws(CommandError) {
        context.out.writeIntegerReply(try context.stringValue(context.args.bytes(1))?.count ?? 0)
    }

    private static func getrange(_ context: inout CommandContext) throws(CommandError) {
        var start = try context.integer(2)
        var end = try context.integer(3)
        guard let value = try context.stringValue(context.args.bytes(1)) else {
            context.out.writeBulk(StoreBytes.empty)
            return
        }
        let length = Int64(value.count)
        if start < 0 && end < 0 && start > end {
            context.out.writeBulk(StoreBytes.empty)
            return
        }
        if start < 0 { start = length + start }
        if end < 0 { end = length + end }
        if start < 0 { start = 0 }
        if end < 0 { end = 0 }
        if end >= length { end = length - 1 }
        if start > end || length == 0 {
            context.out.writeBulk(StoreBytes.empty)
            return
        }
        value.withUnsafeBytes { bytes in
            context.out.writeBulk(UnsafeRawBufferPointer(rebasing: bytes[Int(start)...Int(end)]))
        }
    }

    private static func setrange(_ context: inout CommandContext) throws(CommandError) {
        let key = context.args.bytes(1)
        let offset = try context.integer(2)
        guard offset >= 0 else { throw .message("ERR offset is out of range") }
        let existing = try context.stringValue(key)
        let patchLength = context.args.length(3)
        if patchLength == 0 {
            context.out.writeIntegerReply(existing?.count ?? 0)
            return
        }
        // Compared without adding: a client-chosen offset near Int64.max must not overflow.
        guard offset <= Int64(maxStringLength - patchLength) else {
            throw .message("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        var bytes = existing?.array ?? []
        let end = Int(offset) + patchLength
        if bytes.count < end { bytes.append(contentsOf: repeatElement(0, count: end - bytes.count)) }
        context.args.withBytes(3) { patch in
            for i in 0..<patch.count { bytes[Int(offset) + i] = patch[i] }
        }
        let length = bytes.count
        context.db.replaceStringInPlace(key, StoreBytes(bytes))
        context.db.touch(key)
        context.notify(.string, "setrange", key)
        context.out.writeIntegerReply(length)
    }

    // MARK: Multiple keys

    private static func mget(_ context: inout CommandContext) throws(CommandError) {
        let database = context.db
        context.out.writeArrayHeader(context.args.count - 1)
        for index in 1..<context.args.count {
            if let entry = database.lookup(context.args.bytes(index)), case .string(let value) = entry.value {
                context.out.writeBulk(value)
            } else {
                context.out.writeNullBulk(resp3: context.resp3)
            }
        }
    }

    private static func mset(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count % 2 == 1 else {
            throw .message("ERR wrong number of arguments for '\(context.commandName)' command")
        }
        let database = context.db
        for index in stride(from: 1, to: context.args.count, by: 2) {
            let key = context.args.bytes(index)
            database.set(key, .string(context.args.bytes(index + 1)))
            database.touch(key)
            database.notify(.string, "set", key)
        }
        context.out.writeOK()
    }

    private static func msetnx(_ context: inout CommandContext) throws(CommandError) {
        guard context.args.count % 2 == 1 else {
            throw .message("ERR wrong number of arguments for '\(context.commandName)' command")
        }
        let database = context.db
        for index in stride(from: 1, to: context.args.count, by: 2) where database.lookup(context.args.bytes(index)) != nil {
            context.out.writeIntegerReply(0)
            return
        }
        for index in stride(from: 1, to: context.args.count, by: 2) {
            let key = context.args.bytes(index)
            database.set(key, .string(context.args.bytes(index + 1)))
            database.touch(key)
            database.notify(.string, "set", key)
        }
        context.out.writeIntegerReply(1)
    }
}
