import DequeModule

/// The value stored under a key: one of the Redis data types this store implements.
///
/// Aggregates are reference types so that commands mutate them in place inside the keyspace dictionary
/// without copying.
enum StoreValue {
    /// A string (also used for integers and floats, as in Redis).
    case string(StoreBytes)
    /// A list.
    case list(ListValue)
    /// A hash of fields to values.
    case hash(HashValue)
    /// A set of members.
    case set(SetValue)

    /// The name `TYPE` reports.
    var typeName: StaticString {
        switch self {
        case .string: return "string"
        case .list: return "list"
        case .hash: return "hash"
        case .set: return "set"
        }
    }

    /// An approximation of the memory this value uses, for `INFO memory`.
    var approximateSize: Int {
        switch self {
        case .string(let bytes):
            return 32 + bytes.approximateHeapSize
        case .list(let list):
            var size = 64 + list.items.count * 32
            for item in list.items { size += item.approximateHeapSize }
            return size
        case .hash(let hash):
            var size = 64 + hash.fields.count * 80
            for (field, value) in hash.fields { size += field.approximateHeapSize + value.approximateHeapSize }
            return size
        case .set(let set):
            var size = 64 + set.members.count * 40
            for member in set.members { size += member.approximateHeapSize }
            return size
        }
    }
}

/// A list value.
final class ListValue {
    /// The elements, head first.
    @exclusivity(unchecked) var items: Deque<StoreBytes>

    init(_ items: Deque<StoreBytes> = []) {
        self.items = items
    }
}

/// A hash value.
final class HashValue {
    /// The fields and their values.
    @exclusivity(unchecked) var fields: [StoreBytes: StoreBytes]
    /// Whether Redis would have converted this hash to a hash table (more fields than
    /// `hash-max-listpack-entries`, or a field or value longer than `hash-max-listpack-value`): a conversion
    /// Redis never undoes while the key lives.
    var isHashtable = false

    /// Records that `field` was set to `value`, for ``isHashtable``.
    @inline(__always)
    func noteWrite(_ field: StoreBytes, _ value: StoreBytes, limits: EncodingLimits) {
        if isHashtable { return }
        if Int64(fields.count) > limits.hashMaxListpackEntries || Int64(field.count) > limits.hashMaxListpackValue
            || Int64(value.count) > limits.hashMaxListpackValue
        {
            isHashtable = true
        }
    }

    init(_ fields: [StoreBytes: StoreBytes] = [:]) {
        self.fields = fields
    }
}

/// A set value.
final class SetValue {
    /// The members.
    @exclusivity(unchecked) var members: Set<StoreBytes>
    /// Whether Redis would have converted this set to a hash table (a non-integer member, or more members
    /// than `set-max-intset-entries`): a conversion Redis never undoes while the key lives.
    var isHashtable = false

    /// Records that `member` was added, for ``isHashtable``.
    @inline(__always)
    func noteInsertion(_ member: StoreBytes, limits: EncodingLimits) {
        if isHashtable { return }
        if Int64(members.count) > limits.setMaxIntsetEntries || member.withUnsafeBytes({ Number.parseInt64($0) }) == nil {
            isHashtable = true
        }
    }

    init(_ members: Set<StoreBytes> = []) {
        self.members = members
    }
}

/// How Redis encodes a string that its bytes alone do not tell (`OBJECT ENCODING`).
enum StringEncodingHint {
    /// Modified in place: `raw` whatever its length.
    case raw
    /// Stored as text, never as an integer: `embstr` up to 44 bytes, else `raw`.
    case text
}

/// One keyspace entry: a value and its expiry.
struct StoreEntry {
    /// The value.
    var value: StoreValue
    /// When the key expires, in Unix milliseconds; `0` for never.
    var expiresAt: Int64

    init(_ value: StoreValue, expiresAt: Int64 = 0) {
        self.value = value
        self.expiresAt = expiresAt
    }
}
