import NIOCore

extension Commands {
    static let bitfieldCommands: [CommandSpec] = [
        CommandSpec("bitfield", arity: -2, .write) { try bitfield(&$0, readOnly: false) },
        CommandSpec("bitfield_ro", arity: -2, []) { try bitfield(&$0, readOnly: true) },
    ]

    /// One `BITFIELD` operation, parsed before any runs.
    private struct BitfieldOperation {
        enum Kind { case get, set, incrby }
        enum Overflow { case wrap, sat, fail }
        var kind: Kind
        var signed: Bool
        var bits: Int
        var offset: Int
        var value: Int64
        var overflow: Overflow
    }

    /// `BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
    /// [OVERFLOW WRAP|SAT|FAIL] …` and `BITFIELD_RO key [GET type offset] …`, as Redis 7.0 runs them.
    private static func bitfield(_ context: inout CommandContext, readOnly: Bool) throws(CommandError) {
        var operations: [BitfieldOperation] = []
        var overflow = BitfieldOperation.Overflow.wrap
        var highestWrittenBit = -1
        var index = 2
        while index < context.args.count {
            let remaining = context.args.count - index - 1
            let kind: BitfieldOperation.Kind
            if context.args.matches(index, "get") && remaining >= 2 {
                kind = .get
            } else if context.args.matches(index, "set") && remaining >= 3 {
                kind = .set
            } else if context.args.matches(index, "incrby") && remaining >= 3 {
                kind = .incrby
            } else if context.args.matches(index, "overflow") && remaining >= 1 {
                if context.args.matches(index + 1, "wrap") {
                    overflow = .wrap
                } else if context.args.matches(index + 1, "sat") {
                    overflow = .sat
                } else if context.args.matches(index + 1, "fail") {
                    overflow = .fail
                } else {
                    throw .message("ERR Invalid OVERFLOW type specified")
                }
                index += 2
                continue
            } else {
                throw .syntax
            }
            let (signed, bits) = try bitfieldType(context, index + 1)
            let offset = try bitfieldOffset(context, index + 2, bits: bits)
            var value: Int64 = 0
            if kind != .get {
                highestWrittenBit = max(highestWrittenBit, offset + bits - 1)
                value = try context.integer(index + 3)
            }
            operations.append(BitfieldOperation(kind: kind, signed: signed, bits: bits, offset: offset, value: value, overflow: overflow))
            index += kind == .get ? 3 : 4
        }
        let key = context.args.bytes(1)
        let database = context.db
        let existing = try context.stringValue(key)
        if highestWrittenBit >= 0 && readOnly {
            throw .message("ERR BITFIELD_RO only supports the GET subcommand")
        }
        var bytes = existing?.array ?? []
        var changed = false
        if highestWrittenBit >= 0 {
            let needed = highestWrittenBit / 8 + 1
            if existing == nil || bytes.count < needed {
                changed = true  // created or grown, as Redis counts it
                if bytes.count < needed { bytes.append(contentsOf: repeatElement(0, count: needed - bytes.count)) }
            }
        }
        context.out.writeArrayHeader(operations.count)
        for operation in operations {
            let old = readBits(bytes, offset: operation.offset, bits: operation.bits)
            if operation.kind == .get {
                context.out.writeRESPInteger(operation.signed ? signExtend(old, bits: operation.bits) : Int64(old))
                continue
            }
            guard let (stored, reply) = bitfieldResult(operation, old: old) else {
                context.out.writeNullBulk(resp3: context.resp3)
                continue
            }
            writeBits(&bytes, offset: operation.offset, bits: operation.bits, value: stored)
            if stored != old { changed = true }
            context.out.writeRESPInteger(reply)
        }
        if changed {
            database.replaceStringInPlace(key, StoreBytes(bytes))
            database.touch(key)
            database.notify(.string, "setbit", key)
        } else if highestWrittenBit >= 0 {
            database.noteStringEncoding(key, .raw)  // Redis unshares (and so un-encodes) it all the same
        }
    }

    /// The value to store (as `bits` raw bits) and the reply of a `SET` or `INCRBY`, or `nil` when it
    /// overflows under `OVERFLOW FAIL`. The overflow tests are Redis' own, in wrapping 64-bit arithmetic, so
    /// that even its corner cases (a signed `SET` of Int64.min saturates upwards) come out the same.
    private static func bitfieldResult(_ operation: BitfieldOperation, old: UInt64) -> (UInt64, Int64)? {
        let bits = operation.bits
        let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
        let isIncrement = operation.kind == .incrby
        if operation.signed {
            let maximum: Int64 = bits == 64 ? .max : (1 << Int64(bits - 1)) - 1
            let minimum = -maximum - 1
            let current = signExtend(old, bits: bits)
            let value = isIncrement ? current : operation.value
            let increment = isIncrement ? operation.value : 0
            let maxIncrement = Int64(bitPattern: UInt64(bitPattern: maximum) &- UInt64(bitPattern: value))
            let minIncrement = minimum &- value
            var direction = 0
            if value > maximum || (bits != 64 && increment > maxIncrement)
                || (value >= 0 && increment > 0 && increment > maxIncrement)
            {
                direction = 1
            } else if value < minimum || (bits != 64 && increment < minIncrement)
                || (value < 0 && increment < 0 && increment < minIncrement)
            {
                direction = -1
            }
            var stored = UInt64(bitPattern: value &+ increment) & mask
            if direction != 0 {
                switch operation.overflow {
                case .fail: return nil
                case .sat: stored = UInt64(bitPattern: direction > 0 ? maximum : minimum) & mask
                case .wrap: break
                }
            }
            return (stored, isIncrement ? signExtend(stored, bits: bits) : current)
        }
        // Unsigned: as in Redis, a SET value is read as its 64-bit pattern (a negative one is far above range).
        let value = isIncrement ? old : UInt64(bitPattern: operation.value)
        let increment = isIncrement ? operation.value : 0
        let maxIncrement = Int64(bitPattern: mask &- value)
        let minIncrement = Int64(bitPattern: 0 &- value)
        var direction = 0
        if value > mask || (increment > 0 && increment > maxIncrement) {
            direction = 1
        } else if increment < 0 && increment < minIncrement {
            direction = -1
        }
        var stored = (value &+ UInt64(bitPattern: increment)) & mask
        if direction != 0 {
            switch operation.overflow {
            case .fail: return nil
            case .sat: stored = direction > 0 ? mask : 0
            case .wrap: break
            }
        }
        return (stored, isIncrement ? Int64(stored) : Int64(old))
    }

    /// `i1`…`i64` or `u1`…`u63`.
    private static func bitfieldType(_ context: CommandContext, _ index: Int) throws(CommandError) -> (signed: Bool, bits: Int) {
        let invalid = CommandError.message(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
        )
        let parsed: (Bool, Int64)? = context.args.withBytes(index) { raw in
            guard raw.count >= 2 else { return nil }
            let signed: Bool
            switch raw[0] {
            case UInt8(ascii: "i"): signed = true
            case UInt8(ascii: "u"): signed = false
            default: return nil
            }
            guard let bits = Number.parseInt64(UnsafeRawBufferPointer(rebasing: raw[1...])) else { return nil }
            return (signed, bits)
        }
        guard let (signed, bits) = parsed, bits >= 1, bits <= (signed ? 64 : 63) else { throw invalid }
        return (signed, Int(bits))
    }

    /// A bit offset, or `#n` for the n-th field of this width; below 8 × `proto-max-bulk-len`.
    private static func bitfieldOffset(_ context: CommandContext, _ index: Int, bits: Int) throws(CommandError) -> Int {
        let invalid = CommandError.message("ERR bit offset is not an integer or out of range")
        let parsed: Int64? = context.args.withBytes(index) { raw in
            if raw.count >= 1 && raw[0] == UInt8(ascii: "#") {
                guard let field = Number.parseInt64(UnsafeRawBufferPointer(rebasing: raw[1...])) else { return nil }
                let (offset, overflowed) = field.multipliedReportingOverflow(by: Int64(bits))
                return overflowed ? nil : offset
            }
            return Number.parseInt64(raw)
        }
        guard let offset = parsed, offset >= 0, offset >> 3 < Int64(maxStringLength) else { throw invalid }
        return Int(offset)
    }

    /// `bits` bits at bit `offset` (most significant first), zeros past the end.
    private static func readBits(_ bytes: [UInt8], offset: Int, bits: Int) -> UInt64 {
        var value: UInt64 = 0
        for position in offset..<(offset + bits) {
            let byteIndex = position >> 3
            let bit = byteIndex < bytes.count ? (bytes[byteIndex] >> UInt8(7 - position & 7)) & 1 : 0
            value = value << 1 | UInt64(bit)
        }
        return value
    }

    /// Writes the low `bits` bits of `value` at bit `offset` (the bytes already cover it).
    private static func writeBits(_ bytes: inout [UInt8], offset: Int, bits: Int, value: UInt64) {
        for i in 0..<bits {
            let position = offset + i
            let mask = UInt8(0x80) >> UInt8(position & 7)
            if (value >> UInt64(bits - 1 - i)) & 1 == 1 {
                bytes[position >> 3] |= mask
            } else {
                bytes[position >> 3] &= ~mask
            }
        }
    }

    /// `value`'s low `bits` bits read as a two's complement number.
    private static func signExtend(_ value: UInt64, bits: Int) -> Int64 {
        if bits == 64 { return Int64(bitPattern: value) }
        let shift = UInt64(64 - bits)
        return Int64(bitPattern: value << shift) >> Int64(shift)
    }
}
