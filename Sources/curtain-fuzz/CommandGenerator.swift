import NIOCore

/// Builds client requests for the store: plausible commands (multibulk or inline) and hostile tails.
///
/// Keys are drawn from a small `fz:` key space, and commands that could legitimately destroy other data
/// (`FLUSHALL`, `FLUSHDB`, `CONFIG`, `CLIENT`) or allocate without bound on purpose (`SETRANGE` with a large
/// offset, `SRANDMEMBER` with a huge negative count) are never generated, so any change to the canary keys
/// is a bug.
struct CommandGenerator {
    var frames: FrameGenerator

    /// Templates: `k` key, `v` value, `i` small integer, `f` float, `t` short timeout, `c` channel, `d` database.
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
    ].map { $0.split(separator: " ").map(String.init) }

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
