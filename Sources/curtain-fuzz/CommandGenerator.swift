import NIOCore

/// Builds client requests for the store: plausible commands (multibulk or inline) and hostile tails.
///
/// Keys are drawn from a small `fz:` key space, and commands that could legitimately destroy other data
/// (`FLUSHALL`, `FLUSHDB`, `SWAPDB`, `CONFIG` other than `notify-keyspace-events`, `CLIENT`) or allocate
/// without bound on purpose (`SETRANGE` with a large offset, `SRANDMEMBER` with a huge negative count) are
/// never generated, so any change to the canary keys is a bug.
struct CommandGenerator {
    var frames: FrameGenerator

    /// Templates: `k` key, `v` value, `i` small integer, `f` float, `t` short timeout, `c` channel, `d` database,
    /// `n` boundary integer, `b` boundary float, `T` boundary timeout.
    private static let templates: [[String]] = [
        "PING", "PING v", "ECHO v", "SET k v", "SET k v EX i", "SET k v PX i NX", "SET k v XX GET", "GET k",
        "GETDEL k", "GETEX k PX i", "GETSET k v", "SETNX k v", "SETEX k i v", "MSET k v k v", "MGET k k k", "INCR k",
        "INCRBY k i", "DECRBY k i", "INCRBYFLOAT k f", "APPEND k v", "STRLEN k", "GETRANGE k i i", "DEL k k",
        "UNLINK k", "EXISTS k k", "TYPE k", "EXPIRE k i", "PEXPIRE k i", "TTL k", "PTTL k", "PERSIST k",
        "RENAME k k", "RENAMENX k k", "LPUSH k v v", "RPUSH k v", "LPOP k", "RPOP k i", "LLEN k", "LRANGE k i i",
        "LINDEX k i", "LSET k i v", "LTRIM k i i", "LREM k i v", "LINSERT k BEFORE v v", "LMOVE k k LEFT RIGHT",
        "RPOPLPUSH k k", "BLPOP k t", "BRPOP k k t", "BLMOVE k k RIGHT LEFT t", "SADD k v v", "SREM k v",
        "SMEMBERS k", "SISMEMBER k v", "SCARD k", "SPOP k", "HSET k v v", "HSET k v v v v", "HGET k v",
        "HMGET k v v", "HGETALL k", "HDEL k v", "HINCRBY k v i", "HINCRBYFLOAT k v f", "HLEN k", "HKEYS k",
        "HVALS k", "HEXISTS k v", "MULTI", "EXEC", "DISCARD", "WATCH k", "UNWATCH", "SELECT d", "DBSIZE",
        "SCAN i", "SCAN i MATCH fz:* COUNT i", "KEYS fz:1*", "SUBSCRIBE c", "PSUBSCRIBE c*", "UNSUBSCRIBE",
        "PUBLISH c v", "HELLO 3", "HELLO 2", "HELLO", "INFO", "TIME", "COMMAND", "RESET", "AUTH v", "NOSUCHCOMMAND v",
        "GET", "SET k", "LPUSH k",
        // Boundary numbers wherever a client number reaches arithmetic, an allocation or an index.
        "SETRANGE k n v", "SETRANGE k n x", "GETRANGE k n n", "SUBSTR k n n", "LRANGE k n n", "LINDEX k n",
        "LSET k n v", "LTRIM k n n", "LREM k n v", "LPOP k n", "RPOP k n", "SPOP k n", "SRANDMEMBER k n",
        "INCRBY k n", "DECRBY k n", "HINCRBY k v n", "INCRBYFLOAT k b", "HINCRBYFLOAT k v b", "EXPIRE k n",
        "PEXPIRE k n", "EXPIREAT k n", "PEXPIREAT k n", "EXPIRE k n GT", "SET k v EX n", "SET k v PX n",
        "SET k v EXAT n", "SET k v PXAT n", "GETEX k EX n", "GETEX k PXAT n", "SETEX k n v", "PSETEX k n v",
        "SCAN n", "SCAN 0 COUNT n", "SCAN n MATCH * COUNT n", "SELECT n", "BLPOP k T", "BRPOP k k T",
        "BLMOVE k k LEFT LEFT T", "BRPOPLPUSH k k T", "HELLO n", "SETRANGE k n", "FCALL curtain_log_read_v1 1 k n",
        "FCALL curtain_renew_v1 1 k v n", "FCALL curtain_lock_v1 1 k v n n", "FCALL curtain_log_append_v1 1 k v n",
        "FCALL curtain_log_read_v1 n k n", "SETBIT k n x", "GETBIT k n", "LPOS k v RANK n COUNT n MAXLEN n",
        "LMPOP n k LEFT COUNT n", "BLMPOP T n k RIGHT COUNT n", "SINTERCARD n k LIMIT n", "SSCAN k n COUNT n",
        "HSCAN k n COUNT n", "HRANDFIELD k n", "HRANDFIELD k n WITHVALUES", "MOVE k n", "COPY k k DB n",
        "SORT k LIMIT n n", "LCS k k MINMATCHLEN n", "OBJECT ENCODING k",
        // The parity commands, on the fuzz key space.
        "SINTERSTORE k k k", "SUNION k k", "SDIFFSTORE k k k", "SMOVE k k v", "SINTERCARD 2 k k", "SORT k ALPHA",
        "SORT k ALPHA STORE k", "SORT k BY fz:* GET # GET fz:*->v", "SORT_RO k DESC", "BITOP XOR k k k",
        "BITOP NOT k k", "BITCOUNT k n n BIT", "BITPOS k 1 n n BYTE", "COPY k k REPLACE", "COPY k k DB d", "RANDOMKEY",
        "LMPOP 2 k k LEFT COUNT i", "LPOS k v RANK i", "HRANDFIELD k i", "SRANDMEMBER k i", "MEMORY USAGE k",
        "SSUBSCRIBE c", "SUNSUBSCRIBE", "SPUBLISH c v", "PUBSUB SHARDNUMSUB c", "PSUBSCRIBE __key*",
        "CONFIG SET notify-keyspace-events KEA", "CONFIG SET notify-keyspace-events x",
    ].map { $0.split(separator: " ").map(String.init) }

    /// Integers at the edges: zero, ±1, the 32- and 64-bit limits and one past them, the string size limit
    /// (512 MiB) and its neighbours, and near-integers Redis refuses. Offsets that would legitimately allocate
    /// hundreds of megabytes (just under the string limit) are left out, as the templates above say.
    static let boundaryIntegers = [
        "0", "-1", "1", "2", "-2", "9223372036854775807", "-9223372036854775808", "9223372036854775806",
        "-9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "2147483647", "-2147483648", "2147483648", "4294967295", "4294967296", "536870912", "536870913",
        "-536870912", "4611686018427387904", "-4611686018427387904", "9007199254740993", "-16777217",
        "00", "+1", "1 ", " 1", "1e3", "0x10", "",
    ]
    /// Floats at the edges (for `INCRBYFLOAT`).
    static let boundaryFloats = [
        "0", "-0", "1e308", "-1e308", "1.7976931348623157e308", "4.9e-324", "inf", "-inf", "nan", "1e309",
        "9223372036854775807", "-9223372036854775808", "0x1p3", "1.5e", ".",
    ]
    /// Timeouts at the edges: negative, not numbers, and too large to be a deadline (short ones only, so a
    /// connection never blocks for long).
    static let boundaryTimeouts = [
        "-1", "-0.001", "1e300", "inf", "-inf", "nan", "9223372036854775807", "9223372036854775.807",
        "9223372036854775", "1e16", "abc", "", "0.001", "0.01",
    ]

    init(frames: FrameGenerator) {
        self.frames = frames
    }

    /// The arguments of one random command.
    mutating func words() -> [[UInt8]] {
        let template = frames.rng.pick(Self.templates)
        return template.map { word -> [UInt8] in
            switch word {
            case "k": return Array("fz:\(frames.rng.below(24))".utf8)
            case "v":
                return frames.rng.oneIn(3)
                    ? frames.binary(maxLength: 24)
                    : frames.text(maxLength: 12, alphabet: Array("abcdefxyz0123456789".utf8))
            case "i": return Array(String(frames.rng.below(200) - 20).utf8)
            case "f": return Array(String(Double(frames.rng.below(20_000) - 10_000) / 64).utf8)
            case "t": return Array(frames.rng.pick(["0.01", "0.02", "0.001"]).utf8)
            case "c": return Array("chan\(frames.rng.below(4))".utf8)
            case "d": return Array(String(frames.rng.below(16)).utf8)
            case "n": return Array(frames.rng.pick(Self.boundaryIntegers).utf8)
            case "b": return Array(frames.rng.pick(Self.boundaryFloats).utf8)
            case "T": return Array(frames.rng.pick(Self.boundaryTimeouts).utf8)
            default: return Array(word.utf8)
            }
        }
    }

    /// One well-formed request: a multibulk array of bulk strings, or (a quarter of the time) an inline command.
    mutating func request() -> [UInt8] {
        let words = words()
        let inlineSafe = words.allSatisfy { w in w.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x27 } }
        if inlineSafe && frames.rng.oneIn(4) {
            return Array(words.joined(separator: [0x20])) + [13, 10]
        }
        var buffer = ByteBuffer()
        buffer.writeRESPHeader(UInt8(ascii: "*"), count: words.count)
        for w in words { buffer.writeRESPBulkString(bytes: w) }
        return Array(buffer.readableBytesView)
    }

    /// The last input of a connection: something malformed, hostile or truncated (or nothing).
    mutating func tail() -> [UInt8]? {
        switch frames.rng.below(12) {
        case 0, 1: return nil
        case 2: return frames.randomBytes(maxLength: 96)
        case 3, 4: return frames.mutate(request(), other: request())
        case 5: return frames.hostile(maxAttributeChain: 64)
        case 6:
            // An inline line longer than 64 KiB, with or without its end.
            return [UInt8](repeating: UInt8(ascii: "a"), count: 65_536 + frames.rng.below(5_000)) + (frames.rng.oneIn(2) ? [13, 10] : [])
        case 7:
            // Huge declared sizes in a request header.
            let header = frames.rng.pick(["*2147483648", "*1048577", "*-2", "*1\r\n$536870913", "*1\r\n$-5", "*2\r\n$3\r\nGET\r\n$99999999999"])
            return Array((header + "\r\n").utf8)
        case 8: return Array(String(repeating: "*1\r\n", count: 1000).utf8)
        case 9:
            // Unbalanced quotes and escapes in an inline command.
            return Array(frames.rng.pick(["SET \"a b\" \"c\r\n", "ECHO 'x\r\n", "ECHO \"\\x4\"\r\n", "GET \"a\"b\r\n", "\"\r\n"]).utf8)
        case 10: return frames.validFrames().bytes  // RESP3 values the server never expects from a client.
        default:
            let request = request()
            return Array(request[..<frames.rng.below(request.count)])  // Truncated.
        }
    }
}
