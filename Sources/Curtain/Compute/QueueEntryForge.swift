/// Raw queue entries for tests of the workers' defences (the forgery test of `Scripts/cluster-test.sh`):
/// what someone who can reach the store might push. Not for applications.
@_spi(Testing) public enum QueueEntryForge {
    /// An encoded task envelope, sealed with `secret` if given.
    ///
    /// - Throws: if a field is too long for the envelope format.
    public static func envelope(
        build: String, job: String, index: UInt64 = 0, function: String, captures: [UInt8], input: [UInt8], secret: String?
    ) throws -> [UInt8] {
        let envelope = TaskEnvelope(buildID: build, jobID: job, index: index, function: function, functionPayload: captures, input: input)
        let sealed = Sealer.seal(try envelope.encoded(), with: secret.map(Sealer.init(secret:)))
        return Array(sealed.readableBytesView)
    }
}
