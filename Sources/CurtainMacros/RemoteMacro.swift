import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@Remote`: on a function, its `$`-twin, the function as a value and a section record; on a
/// `RemoteFunction` struct or a spawnable actor, the record alone.
///
/// The twin has a name of its own on purpose: a same-name `async` overload would be chosen by existing
/// plain calls in `try await` expressions and change what they do without a word (see ARCHITECTURE.md).
struct RemoteMacro: PeerMacro {
    static func expansion(
        of node: AttributeSyntax, providingPeersOf declaration: some DeclSyntaxProtocol, in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        let scope: Scope
        do {
            scope = try Scope(context.lexicalContext)
        } catch let problem as RemoteProblem {
            context.diagnose(problem.diagnostic(at: Syntax(node)))
            return []
        }
        do {
            if let function = declaration.as(FunctionDeclSyntax.self) {
                return try expand(function, in: scope)
            }
            if let type = RegisteredType(declaration) {
                return [record(for: type.name, scope: scope, access: type.access)]
            }
            throw RemoteProblem(
                Syntax(node), "@Remote applies to a function, a RemoteFunction struct or a distributed actor",
                id: "unsupported-declaration")
        } catch let problem as RemoteProblem {
            context.diagnose(problem.diagnostic(at: problem.node ?? Syntax(node)))
            return []
        }
    }

    // MARK: - Functions

    private static func expand(_ function: FunctionDeclSyntax, in scope: Scope) throws -> [DeclSyntax] {
        let name = function.name.text
        if let generics = function.genericParameterClause {
            throw RemoteProblem(
                Syntax(generics),
                "@Remote cannot make a generic function remote: a worker must know the concrete types it decodes; add a non-generic @Remote function for each type you call it with",
                id: "generic")
        }
        if let clause = function.genericWhereClause {
            throw RemoteProblem(Syntax(clause), "@Remote cannot make a function with a 'where' clause remote: make it non-generic", id: "generic")
        }
        let modifiers = Set(function.modifiers.map(\.name.text))
        if modifiers.contains("mutating") {
            throw RemoteProblem(
                Syntax(function.name),
                "@Remote cannot make a mutating method remote: its changes to 'self' would stay on the worker; return the new value instead",
                id: "mutating")
        }
        let isStatic = modifiers.contains("static") || modifiers.contains("class")
        if !isStatic, scope.kind == .reference {
            throw RemoteProblem(
                Syntax(function.name),
                "@Remote cannot make a method of a class or actor remote: a copy of the object would run on the worker and its changes would be lost; use a method of a Codable struct, a static function, or a distributed actor",
                id: "reference-method")
        }
        if let specifier = function.signature.effectSpecifiers?.throwsClause?.throwsSpecifier, specifier.tokenKind == .keyword(.rethrows) {
            throw RemoteProblem(Syntax(specifier), "@Remote cannot make a rethrowing function remote: its closure parameter cannot cross to a worker", id: "closure")
        }
        let parameters = try function.signature.parameterClause.parameters.map(Parameter.init)
        let returnType = function.signature.returnClause?.type
        if let returnType { try checkCrossable(returnType, what: "its result") }

        let throwsRemotely = function.signature.effectSpecifiers?.throwsClause != nil
        let isAsync = function.signature.effectSpecifiers?.asyncSpecifier != nil
        let access = accessModifier(function.modifiers)
        let member = access.isEmpty ? "" : access + " "
        let staticKeyword = isStatic ? "static " : ""
        let valueType = "__curtain_\(name)"
        let output = returnType.map { $0.trimmedDescription } ?? "Curtain.RemoteVoid"
        let returnsVoid = returnType == nil || ["Void", "()", "Swift.Void"].contains(output)
        let outputType = returnsVoid ? "Curtain.RemoteVoid" : output
        let tryKeyword = throwsRemotely ? "try " : ""
        let awaitKeyword = isAsync ? "await " : ""

        // The stored properties of the input: the parameters, and `self` for an instance method.
        var fields = parameters.map { (name: $0.internalName, type: $0.type) }
        if !isStatic && scope.typeName != nil { fields.insert((name: "__self", type: scope.typeName!), at: 0) }
        let arguments = parameters.map { $0.argument(from: "input.") }.joined(separator: ", ")
        let localArguments = parameters.map { $0.argument(from: "") }.joined(separator: ", ")
        let target: String
        let localTarget: String
        if let typeName = scope.typeName {
            target = isStatic ? "\(typeName).\(name)" : "input.__self.\(name)"
            localTarget = isStatic ? "\(typeName).\(name)" : "self.\(name)"
        } else {
            target = name
            localTarget = name
        }
        let remoteCall = "\(tryKeyword)\(awaitKeyword)\(target)(\(arguments))"
        let localCall = "\(tryKeyword)\(awaitKeyword)\(localTarget)(\(localArguments))"
        let body = returnsVoid ? "\(remoteCall)\n        return Curtain.RemoteVoid()" : "return \(remoteCall)"
        let localBody = returnsVoid ? "\(localCall)\n        return Curtain.RemoteVoid()" : localCall
        let inputArguments = fields.map { "\($0.name): \($0.name == "__self" ? "self" : $0.name)" }
            .joined(separator: ", ")

        let inputFields = fields.map { "        \(member)var \($0.name): \($0.type)" }.joined(separator: "\n")
        let initParameters = fields.map { "\($0.name): \($0.type)" }.joined(separator: ", ")
        let initBody = fields.map { "            self.\($0.name) = \($0.name)" }.joined(separator: "\n")
        let valueDecl: DeclSyntax = """
            /// `\(raw: name)` as a value that can run on a worker (generated by `@Remote`).
            \(raw: member)struct \(raw: valueType): Curtain.RemoteFunction {
                /// The arguments of one call.
                \(raw: member)struct Input: Codable, Sendable {
            \(raw: inputFields)
                    \(raw: member)init(\(raw: initParameters)) {
            \(raw: initBody)
                    }
                }
                \(raw: member)init() {
                }
                \(raw: member)static var name: String {
                    Curtain.RemoteCall.name(of: Self.self)
                }
                \(raw: member)func callAsFunction(_ input: Input) async throws -> \(raw: outputType) {
                    \(raw: body)
                }
                @section("curtain_remote") @used static let record: Curtain.RemoteRecord = (0x4355_5254, { $0.initializeMemory(as: Any.Type.self, repeating: \(raw: valueType).self, count: 1) })
            }
            """

        let entry = throwsRemotely ? "result" : "value"
        let twinEffects = throwsRemotely ? "async throws" : "async"
        let twinReturn = returnsVoid ? "" : " -> \(output)"
        let call = "\(tryKeyword)await Curtain.RemoteCall.\(entry)(\(valueType)(), \(valueType).Input(\(inputArguments))) {\n        \(localBody)\n    }"
        let twinBody = returnsVoid ? "_ = \(call)" : call
        let discardable = function.attributes.contains { $0.as(AttributeSyntax.self)?.attributeName.trimmedDescription == "discardableResult" }
        let twinDecl: DeclSyntax = """
            /// Runs `\(raw: name)` on the ambient cloud's workers, or locally outside any cloud (generated by `@Remote`).
            \(raw: discardable ? "@discardableResult " : "")\(raw: member)\(raw: staticKeyword)func $\(raw: name)\(raw: function.signature.parameterClause.trimmedDescription) \(raw: twinEffects)\(raw: twinReturn) {
                \(raw: twinBody)
            }
            """
        return [twinDecl, valueDecl]
    }

    /// Refuses a type that cannot cross to another process, whatever it names.
    fileprivate static func checkCrossable(_ type: TypeSyntax, what: String) throws {
        if let attributed = type.as(AttributedTypeSyntax.self) {
            if attributed.specifiers.contains(where: { $0.trimmedDescription == "inout" }) {
                throw RemoteProblem(
                    Syntax(type), "@Remote: \(what) is 'inout': a worker cannot write back to the caller's variable; return the new value instead",
                    id: "inout")
            }
            return try checkCrossable(attributed.baseType, what: what)
        }
        if type.is(FunctionTypeSyntax.self) {
            throw RemoteProblem(
                Syntax(type),
                "@Remote: \(what) is a closure: code cannot be sent to a worker; pass the data it needs, or make what it does a @Remote function of its own",
                id: "closure")
        }
        if type.is(SomeOrAnyTypeSyntax.self) {
            throw RemoteProblem(
                Syntax(type), "@Remote: \(what) has type '\(type.trimmedDescription)': a worker must know the concrete Codable type it decodes",
                id: "existential")
        }
        if let tuple = type.as(TupleTypeSyntax.self), tuple.elements.count != 1 || tuple.elements.first?.firstName != nil {
            if tuple.elements.isEmpty { return }  // `()`: nothing
            throw RemoteProblem(
                Syntax(type), "@Remote: \(what) is a tuple, which is not Codable; use a Codable struct", id: "tuple")
        }
        if let tuple = type.as(TupleTypeSyntax.self), let only = tuple.elements.first {
            try checkCrossable(only.type, what: what)
        }
    }

    // MARK: - Types

    private static func record(for name: String, scope: Scope, access: String) -> DeclSyntax {
        let qualified = scope.typeName.map { "\($0).\(name)" } ?? name
        let staticKeyword = scope.typeName == nil ? "" : "static "
        return """
            /// Registers `\(raw: name)` with every cloud this program starts (generated by `@Remote`).
            @section("curtain_remote") @used \(raw: staticKeyword)let __curtain_\(raw: name): Curtain.RemoteRecord = (0x4355_5254, { $0.initializeMemory(as: Any.Type.self, repeating: \(raw: qualified).self, count: 1) })
            """
    }

    fileprivate static func accessModifier(_ modifiers: DeclModifierListSyntax) -> String {
        for modifier in modifiers {
            switch modifier.name.tokenKind {
            case .keyword(.public), .keyword(.package), .keyword(.fileprivate), .keyword(.private), .keyword(.internal):
                return modifier.name.text
            case .keyword(.open):
                return "public"
            default:
                continue
            }
        }
        return ""
    }
}

/// One parameter of a `@Remote` function.
private struct Parameter {
    /// The argument label (`nil` for `_`).
    var label: String?
    /// The name inside the function, which names the input's field.
    var internalName: String
    var type: String

    init(_ syntax: FunctionParameterSyntax) throws {
        let first = syntax.firstName.text
        let internalName = syntax.secondName?.text ?? first
        guard internalName != "_" else {
            throw RemoteProblem(Syntax(syntax), "@Remote: every parameter needs a name, to carry its value to the worker", id: "unnamed")
        }
        if syntax.ellipsis != nil {
            throw RemoteProblem(Syntax(syntax), "@Remote: parameter '\(internalName)' is variadic; take an array instead", id: "variadic")
        }
        try RemoteMacro.checkCrossable(syntax.type, what: "parameter '\(internalName)'")
        label = first == "_" ? nil : first
        self.internalName = internalName
        // `borrowing`/`consuming` say how the call passes the value; the input's field is the plain type.
        if let attributed = syntax.type.as(AttributedTypeSyntax.self), attributed.attributes.isEmpty {
            type = attributed.baseType.trimmedDescription
        } else {
            type = syntax.type.trimmedDescription
        }
    }

    /// The argument as written in a call, reading the value from `prefix` + the parameter's name.
    func argument(from prefix: String) -> String {
        let value = prefix + internalName.trimmingBackticks
        return label.map { "\($0): \(value)" } ?? value
    }
}

extension String {
    fileprivate var trimmingBackticks: String {
        hasPrefix("`") && hasSuffix("`") && count > 1 ? String(dropFirst().dropLast()) : self
    }
}

/// A `RemoteFunction` struct or a spawnable (distributed) actor.
private struct RegisteredType {
    var name: String
    var access: String

    init?(_ declaration: some DeclSyntaxProtocol) {
        if let type = declaration.as(StructDeclSyntax.self), type.genericParameterClause == nil {
            name = type.name.text
            access = RemoteMacro.accessModifier(type.modifiers)
        } else if let type = declaration.as(ActorDeclSyntax.self), type.genericParameterClause == nil,
            type.modifiers.contains(where: { $0.name.text == "distributed" })
        {
            name = type.name.text
            access = RemoteMacro.accessModifier(type.modifiers)
        } else if let type = declaration.as(EnumDeclSyntax.self), type.genericParameterClause == nil {
            name = type.name.text
            access = RemoteMacro.accessModifier(type.modifiers)
        } else {
            return nil
        }
    }
}

/// Where the attached declaration is: at the top level, or in a type (by its name) of value or reference kind.
private struct Scope {
    enum Kind { case topLevel, value, reference }
    var kind: Kind
    /// The enclosing type as code names it (`Outer.Inner`), `nil` at the top level.
    var typeName: String?

    init(_ lexicalContext: [Syntax]) throws {
        guard let innermost = lexicalContext.first else {
            kind = .topLevel
            return
        }
        var names: [String] = []
        var innerKind: Kind?
        for syntax in lexicalContext {
            let name: String
            let kind: Kind
            if let type = syntax.as(StructDeclSyntax.self) {
                if type.genericParameterClause != nil { throw Self.generic(type.name.text) }
                (name, kind) = (type.name.text, .value)
            } else if let type = syntax.as(EnumDeclSyntax.self) {
                if type.genericParameterClause != nil { throw Self.generic(type.name.text) }
                (name, kind) = (type.name.text, .value)
            } else if let type = syntax.as(ClassDeclSyntax.self) {
                if type.genericParameterClause != nil { throw Self.generic(type.name.text) }
                (name, kind) = (type.name.text, .reference)
            } else if let type = syntax.as(ActorDeclSyntax.self) {
                (name, kind) = (type.name.text, .reference)
            } else if let type = syntax.as(ExtensionDeclSyntax.self) {
                (name, kind) = (type.extendedType.trimmedDescription, .value)
            } else {
                throw RemoteProblem(
                    innermost, "@Remote applies to top-level functions and members of types, not to local functions or protocol requirements",
                    id: "local")
            }
            names.insert(name, at: 0)
            if innerKind == nil { innerKind = kind }
            // An extension names its type in full: nothing outside it adds to the name.
            if syntax.is(ExtensionDeclSyntax.self) { break }
        }
        kind = innerKind ?? .topLevel
        typeName = names.joined(separator: ".")
    }

    private static func generic(_ name: String) -> RemoteProblem {
        RemoteProblem(
            nil, "@Remote cannot be used inside the generic type '\(name)': its registration must name one concrete type",
            id: "generic-context")
    }
}

/// What stops a declaration from being made remote, as a diagnostic naming the problem and the fix.
struct RemoteProblem: Error, DiagnosticMessage {
    let node: Syntax?
    let message: String
    let diagnosticID: MessageID
    var severity: DiagnosticSeverity { .error }

    init(_ node: Syntax?, _ message: String, id: String) {
        self.node = node
        self.message = message
        diagnosticID = MessageID(domain: "Curtain.Remote", id: id)
    }

    func diagnostic(at fallback: Syntax) -> Diagnostic {
        Diagnostic(node: node ?? fallback, message: self)
    }
}
