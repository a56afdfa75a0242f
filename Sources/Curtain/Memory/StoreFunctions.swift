import CurtainRESP
import NIOCore

/// Curtain's function library in the store: the few compare-and-act steps of locks that must be atomic
/// and cost one round trip.
///
/// On `redis-server` this Lua library is loaded with `FUNCTION LOAD REPLACE` the first time a call finds it
/// missing (functions persist with the data, and replicate); the embedded store has the same functions
/// built in (`CurtainStore`, Commands+Functions.swift), and one conformance suite checks that both agree.
/// The version is part of every name, so clients of different Curtain versions never replace each other's
/// functions.
enum StoreFunctions {
    static let library = "curtain_v1"
    static let lock = "curtain_lock_v1"
    static let unlock = "curtain_unlock_v1"
    static let renew = "curtain_renew_v1"
    static let logAppend = "curtain_log_append_v1"
    static let logRead = "curtain_log_read_v1"

    /// The library, as `FUNCTION LOAD` takes it. Keys derived from a lock key `L`: `L` (holder token,
    /// expiring with the lease), `L:fence`, `L:queue` (waiting tokens, oldest first), `L:waiters` (token →
    /// `"<deadline>:<lease>"`: the Unix ms after which a waiter that stopped polling is presumed dead, and the
    /// lease it asked for, which a hand-over grants it), `L:grant:<token>` (a list that
    /// receives `"<fence>"`, or `"<fence>:<value>"` when the lock guards a value key).
    static let source = #"""
    #!lua name=curtain_v1
    local function now_ms()
      local t = redis.call('TIME')
      return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local function grant(lock, token, lease, value_key)
      redis.call('SET', lock, token, 'PX', lease)
      local payload = tostring(redis.call('INCR', lock .. ':fence'))
      if value_key then
        local value = redis.call('GET', value_key)
        if value then payload = payload .. ':' .. value end
      end
      local box = lock .. ':grant:' .. token
      redis.call('DEL', box)
      redis.call('RPUSH', box, payload)
      redis.call('PEXPIRE', box, lease)
    end
    local function check_types(lock, value_key)
      redis.call('STRLEN', lock)
      redis.call('STRLEN', lock .. ':fence')
      redis.call('LLEN', lock .. ':queue')
      redis.call('HLEN', lock .. ':waiters')
      if value_key then redis.call('STRLEN', value_key) end
    end
    local function positive(text)
      local n = tonumber(text)
      if not n or n <= 0 or n ~= math.floor(n) then
        return redis.error_reply('ERR value is not a positive integer')
      end
      return n
    end
    -- KEYS: lock [, value]; ARGV: token, lease ms, waiter window ms (0: do not queue). 1: granted (the
    -- grant is in the caller's grant list); 0: queued (or its place refreshed), or not queued for window 0.
    redis.register_function('curtain_lock_v1', function(keys, args)
      if #keys < 1 or #keys > 2 or #args ~= 3 then
        return redis.error_reply('ERR curtain_lock_v1: wrong number of keys or arguments')
      end
      local lock, token = keys[1], args[1]
      local lease, window = positive(args[2]), tonumber(args[3])
      if type(lease) == 'table' then return lease end
      if not window or window < 0 or window ~= math.floor(window) then
        return redis.error_reply('ERR value is not a non-negative integer')
      end
      check_types(lock, keys[2])
      local queue, waiters = lock .. ':queue', lock .. ':waiters'
      local holder = redis.call('GET', lock)
      if not holder then
        redis.call('LREM', queue, 0, token)
        redis.call('HDEL', waiters, token)
        grant(lock, token, lease, keys[2])
        return 1
      end
      if holder == token then return 1 end
      if window == 0 then return 0 end
      local deadline = now_ms() + window
      if redis.call('HSET', waiters, token, string.format('%d:%d', deadline, lease)) == 1 then
        redis.call('RPUSH', queue, token)
      end
      for _, key in ipairs({queue, waiters}) do
        if redis.call('PEXPIRETIME', key) < deadline then
          redis.call('PEXPIREAT', key, string.format('%d', deadline))
        end
      end
      return 0
    end)
    -- KEYS: lock [, value]; ARGV: token, lease ms [, new value]. Leaves the queue; if the caller holds the
    -- lock, stores the new value and hands the lock to the oldest live waiter or frees it (1); 0 if the
    -- caller did not hold it (nothing stored).
    redis.register_function('curtain_unlock_v1', function(keys, args)
      if #keys < 1 or #keys > 2 or #args < 2 or #args > #keys + 1 then
        return redis.error_reply('ERR curtain_unlock_v1: wrong number of keys or arguments')
      end
      local lock, token = keys[1], args[1]
      local lease = positive(args[2])
      if type(lease) == 'table' then return lease end
      check_types(lock, keys[2])
      local queue, waiters = lock .. ':queue', lock .. ':waiters'
      redis.call('LREM', queue, 0, token)
      redis.call('HDEL', waiters, token)
      redis.call('DEL', lock .. ':grant:' .. token)
      if redis.call('GET', lock) ~= token then return 0 end
      if keys[2] and args[3] then redis.call('SET', keys[2], args[3]) end
      local now = now_ms()
      while true do
        local next = redis.call('LPOP', queue)
        if not next then break end
        local entry = redis.call('HGET', waiters, next)
        redis.call('HDEL', waiters, next)
        local deadline, their_lease = string.match(entry or '', '^(%d+):(%d+)$')
        if deadline and tonumber(deadline) >= now then
          grant(lock, next, their_lease, keys[2])
          return 1
        end
      end
      redis.call('DEL', lock)
      return 1
    end)
    -- KEYS: log; ARGV: entry, most entries kept. Appends an entry to a delta log (L, with its count of
    -- entries ever appended in L:seq), drops the oldest beyond the limit, and returns the entry's number.
    redis.register_function('curtain_log_append_v1', function(keys, args)
      if #keys ~= 1 or #args ~= 2 then
        return redis.error_reply('ERR curtain_log_append_v1: wrong number of keys or arguments')
      end
      local limit = positive(args[2])
      if type(limit) == 'table' then return limit end
      redis.call('LLEN', keys[1])
      local seq = redis.call('INCR', keys[1] .. ':seq')
      redis.call('RPUSH', keys[1], args[1])
      if redis.call('LLEN', keys[1]) > limit then redis.call('LPOP', keys[1]) end
      return seq
    end)
    -- KEYS: log; ARGV: after [, tag]. The entries numbered after `after`, except those starting with the
    -- bytes `tag` (the reader's own): {last number, entries no longer kept, entry, entry, ...}.
    redis.register_function('curtain_log_read_v1', function(keys, args)
      if #keys ~= 1 or #args < 1 or #args > 2 then
        return redis.error_reply('ERR curtain_log_read_v1: wrong number of keys or arguments')
      end
      local after = tonumber(args[1])
      if not after or after < 0 or after ~= math.floor(after) then
        return redis.error_reply('ERR value is not a non-negative integer')
      end
      local seq = tonumber(redis.call('GET', keys[1] .. ':seq') or '0')
      local first = seq - redis.call('LLEN', keys[1]) + 1
      local start = math.max(after + 1, first)
      local reply = {seq, math.max(0, first - after - 1)}
      if start <= seq then
        local tag = args[2]
        for _, entry in ipairs(redis.call('LRANGE', keys[1], start - first, -1)) do
          if not tag or string.sub(entry, 1, #tag) ~= tag then reply[#reply + 1] = entry end
        end
      end
      return reply
    end)
    -- KEYS: lock; ARGV: token, lease ms. Extends the lease if the caller holds the lock (1), else 0.
    redis.register_function('curtain_renew_v1', function(keys, args)
      if #keys ~= 1 or #args ~= 2 then
        return redis.error_reply('ERR curtain_renew_v1: wrong number of keys or arguments')
      end
      local lease = positive(args[2])
      if type(lease) == 'table' then return lease end
      if redis.call('GET', keys[1]) ~= args[1] then return 0 end
      redis.call('PEXPIRE', keys[1], lease)
      return 1
    end)
    """#

    /// The `FCALL` command for `function` with `keys` and `arguments`.
    static func call(_ function: String, keys: [String], arguments: [any RESPArgument]) -> RESPCommand {
        RESPCommand("FCALL", arguments: [function, keys.count] + keys.map { $0 as any RESPArgument } + arguments)
    }

    /// Whether `reply` says the library is not loaded (a `redis-server` that never ran Curtain's locks).
    static func isMissing(_ reply: RESPValue) -> Bool {
        reply.errorMessage?.contains("Function not found") == true
    }

    /// Loads the library into the store (a no-op on the embedded store, which has it built in).
    static func load(using client: RESPClient) async throws {
        do {
            _ = try await client.send(RESPCommand("FUNCTION", "LOAD", "REPLACE", source))
        } catch RESPError.server(let message) {
            throw SharedMemoryError(
                description: "the store refused Curtain's function library (\(message)); locks, mutexes and asynchronous replicas need Redis 7.0 or newer")
        }
    }

    /// Sends `commands` with `send` (a client's or a connection's `pipeline`); if a reply says the library
    /// is missing, loads it through `client` and sends them once more.
    static func pipeline(
        _ commands: [RESPCommand], using client: RESPClient, send: ([RESPCommand]) async throws -> [RESPValue]
    ) async throws -> [RESPValue] {
        let replies = try await send(commands)
        guard replies.contains(where: isMissing) else { return replies }
        try await load(using: client)
        return try await send(commands)
    }

    /// Sends one `FCALL`, loading the library first if the store does not have it.
    static func send(_ command: RESPCommand, using client: RESPClient, timeout: TimeAmount? = nil) async throws -> RESPValue {
        do {
            return try await client.send(command, timeout: timeout)
        } catch RESPError.server(let message) where message.contains("Function not found") {
            try await load(using: client)
            return try await client.send(command, timeout: timeout)
        }
    }
}
