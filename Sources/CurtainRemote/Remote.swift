@_exported import Curtain

/// Makes an ordinary function callable on the cloud's workers, or registers a type with every cloud.
///
/// On a function (top-level, `static`, or a method of a `Codable` value):
///
/// ```swift
/// @Remote
/// func row(_ y: Int, width: Int) -> [UInt16] { … }
///
/// let pixels = await $row(7, width: 1600)   // on the ambient cloud's workers; locally outside any cloud
/// ```
///
/// The macro adds, beside the function:
/// - `$row(_:width:)`, its twin with the same parameters, `async` (and `throws` if the function throws). Inside
///   a cloud (``Cloud/start()``, or ``Cloud/withAmbient(_:)``) a call runs on a worker; concurrent calls are
///   sent together as one job. Outside any cloud it runs the function locally. The plain `row(_:width:)` is
///   untouched and still runs where it is called.
/// - `__curtain_row`, the function as a value (a ``RemoteFunction`` whose input is the parameters), and a
///   record in the executable's `curtain_remote` section that lets ``Cloud/start()`` find it without a list.
///
/// On a ``RemoteFunction`` struct or a ``SpawnableActor``, it only adds the record.
///
/// Parameters and the result must be `Codable` and `Sendable` (and so must `self`, for a method). The macro
/// refuses what cannot cross to another process: `inout`, closures, variadic and generic parameters, `mutating`
/// methods, methods of classes and actors.
@attached(peer, names: prefixed(`$`), prefixed(__curtain_))
public macro Remote() = #externalMacro(module: "CurtainMacros", type: "RemoteMacro")
