internal import CCurtainRecords

/// A record `@Remote` places in the executable's `curtain_remote` section, one per remote function or
/// spawnable actor type, so that ``Cloud/start()`` finds every such type linked into the program without a
/// list to keep.
///
/// The first field is ``RemoteRecords/magic``; the second writes the registered type (an `Any.Type`) into
/// the memory it is given. Records are compile-time constants: this is the shape the compiler accepts in a
/// section (a literal and a non-capturing closure), the way swift-testing finds `@Test` functions.
/// Written by the macro; not meant to be written by hand.
public typealias RemoteRecord = (UInt32, @convention(c) (UnsafeMutableRawPointer) -> Void)

/// The types the `curtain_remote` section of this executable registers.
///
/// Only code compiled into the binary can be found here: a worker looks a task's function up among these
/// (by the names they declare), never through the runtime's lookup of a type name read off the wire.
public enum RemoteRecords {
    /// The first field of every record: `CURT` in ASCII. A record without it is skipped.
    public static let magic: UInt32 = 0x4355_5254

    /// Every type the records name, in link order.
    static var types: [any Any.Type] {
        guard let start = curtain_records_start(), let stop = curtain_records_stop(), stop > start else { return [] }
        let stride = MemoryLayout<RemoteRecord>.stride
        let count = (stop - start) / stride
        var types: [any Any.Type] = []
        types.reserveCapacity(count)
        for index in 0..<count {
            let record = start.load(fromByteOffset: index * stride, as: RemoteRecord.self)
            guard record.0 == magic else { continue }
            let slot = UnsafeMutablePointer<any Any.Type>.allocate(capacity: 1)
            defer { slot.deallocate() }
            record.1(UnsafeMutableRawPointer(slot))
            types.append(slot.move())
        }
        return types
    }

    /// The remote functions the records register, without duplicates.
    public static var functions: [any RemoteFunction.Type] {
        var seen: Set<ObjectIdentifier> = []
        return types.compactMap { $0 as? any RemoteFunction.Type }.filter { seen.insert(ObjectIdentifier($0)).inserted }
    }

    /// The spawnable actor types the records register, without duplicates.
    public static var actors: [any SpawnableActor.Type] {
        var seen: Set<ObjectIdentifier> = []
        return types.compactMap { $0 as? any SpawnableActor.Type }.filter { seen.insert(ObjectIdentifier($0)).inserted }
    }
}
