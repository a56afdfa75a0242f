import SwiftCompilerPlugin
import SwiftSyntaxMacros

/// The compiler plugin that provides Curtain's macros.
@main
struct CurtainMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [RemoteMacro.self]
}
