import NIOCore

/// Everything a command implementation works with: the store, the calling client, the request's arguments
/// and the output buffer its reply goes into.
struct CommandContext {
    /// The store (keyspace, clients, pub/sub, blocking queues).
    let store: StoreState
    /// The client that sent the command.
    let client: ClientConnection
    /// The request; argument 0 is the command name.
    var args: CommandArguments
    /// The caller's pending output; replies are appended here.
    var out: ByteBuffer
    /// Whether the command runs inside `EXEC` (blocking commands then behave as non-blocking).
    var inTransaction = false

    init(store: StoreState, client: ClientConnection, out: ByteBuffer) {
        self.store = store
        self.client = client
        self.args = .empty
        self.out = out
    }

    /// Whether the client speaks RESP3.
    @inline(__always)
    var resp3: Bool { client.protocolVersion == 3 }

    /// The client's selected database.
    @inline(__always)
    var db: Database { store.databases[client.databaseIndex] }

    /// Argument `index` as an integer, or `ERR value is not an integer or out of range`.
    @inline(__always)
    func integer(_ index: Int) throws(CommandError) -> Int64 {
        guard let value = args.int64(index) else { throw .notInteger }
        return value
    }

    /// The string at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func stringValue(_ key: StoreBytes) throws(CommandError) -> StoreBytes? {
        try db.stringValue(key)
    }

    /// The list at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func listValue(_ key: StoreBytes) throws(CommandError) -> ListValue? {
        try db.listValue(key)
    }

    /// The hash at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func hashValue(_ key: StoreBytes) throws(CommandError) -> HashValue? {
        try db.hashValue(key)
    }

    /// The set at `key`, `nil` if absent, `WRONGTYPE` if another type.
    @inline(__always)
    func setValue(_ key: StoreBytes) throws(CommandError) -> SetValue? {
        try db.setValue(key)
    }

    /// The lowercase command name, for error messages.
    var commandName: String { args.string(0).lowercased() }
}

extension CommandArguments {
    /// No arguments.
    static let empty = CommandArguments(buffer: ByteBuffer(), spans: [])
}
