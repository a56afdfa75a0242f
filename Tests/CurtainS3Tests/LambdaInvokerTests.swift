import Curtain
@testable import CurtainS3
import CurtainTestSupport
import Foundation
import Testing

/// The Lambda invoker's signed requests against moto's Lambda API (an imitation, without Docker: moto
/// answers an invocation with the result queued for it), with moto checking every signature.
@Suite("Lambda invoker: signed invocations against moto")
struct LambdaInvokerTests {
    @Test func signedInvocationsReachTheFunctionAndItsReportComesBack() async throws {
        let moto = try await MotoServer(authenticated: true)
        defer { Task { await terminate(moto.process) } }
        let (key, secret) = try await moto.issueKeys()
        let report = LeaseReport(worker: "lambda-1", build: "b", tasks: 7, failures: 1, handedBack: 0, seconds: 0.5, ended: "idle")
        let reportJSON = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        let failure = #"{"errorMessage":"this function runs build a, the invocation asks for build b","errorType":"Curtain.Lease.wrongBuild"}"#
        // With the issued keys (every call now signed): moto's Lambda without Docker, a role, the function,
        // and the two answers it gives, in order.
        let setup = """
            import boto3, json, sys, urllib.request, io, zipfile
            args = json.loads(sys.argv[1])
            def post(path, body):
                request = urllib.request.Request(args["endpoint"] + path, data=json.dumps(body).encode(), method="POST",
                                                 headers={"Content-Type": "application/json"})
                urllib.request.urlopen(request, timeout=30).read()
            post("/moto-api/config", {"lambda": {"use_docker": False}})
            session = dict(endpoint_url=args["endpoint"], region_name="us-east-1",
                           aws_access_key_id=args["key"], aws_secret_access_key=args["secret"])
            role = boto3.client("iam", **session).create_role(
                RoleName="curtain", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}')["Role"]["Arn"]
            code = io.BytesIO()
            with zipfile.ZipFile(code, "w") as z:
                z.writestr("bootstrap", "#!/bin/sh\\n")
            boto3.client("lambda", **session).create_function(
                FunctionName="curtain-worker", Runtime="provided.al2023", Role=role, Handler="bootstrap",
                Code={"ZipFile": code.getvalue()})
            post("/moto-api/static/lambda-simple/response", {"results": [args["report"], args["failure"]], "region": "us-east-1"})
            print("ready")
            """
        let arguments = String(decoding: try JSONSerialization.data(withJSONObject: [
            "endpoint": moto.endpoint, "key": key, "secret": secret, "report": reportJSON, "failure": failure,
        ]), as: UTF8.self)
        let output = try await MotoServer.runPython(setup, arguments)
        try #require(output.contains("ready"), "\(output)")

        let invoker = try LambdaInvoker(function: "curtain-worker", region: "us-east-1", accessKey: key, secretKey: secret, endpoint: moto.endpoint)
        #expect(try await invoker.invoke(LeaseRequest(build: "b", seconds: 5)) == report)
        // The second queued answer is a function error (moto returns it as the payload; a real Lambda adds
        // X-Amz-Function-Error): not a report, so the invocation failed, naming the function.
        do {
            _ = try await invoker.invoke(LeaseRequest(build: "b", seconds: 5))
            Issue.record("a function error was taken for a report")
        } catch let error as InvokeError {
            #expect((error.kind == .failed || error.kind == .refused) && error.message.contains("curtain-worker"), "\(error)")
        }
        // A wrong secret: moto checks the signature and refuses; that is for good.
        let forged = try LambdaInvoker(function: "curtain-worker", region: "us-east-1", accessKey: key, secretKey: "wrong", endpoint: moto.endpoint)
        do {
            _ = try await forged.invoke(LeaseRequest(build: "b", seconds: 5))
            Issue.record("a forged signature was accepted")
        } catch let error as InvokeError {
            #expect(error.kind == .refused && error.status == 403, "\(error)")
        }
        // (moto's Lambda without Docker answers any function name, so a missing function cannot be shown here.)
        // Event: queued, no report.
        let queued = try LambdaInvoker(
            function: "curtain-worker", region: "us-east-1", accessKey: key, secretKey: secret, endpoint: moto.endpoint, invocationType: .event)
        #expect(try await queued.invoke(LeaseRequest(build: "b", seconds: 5)) == nil)
        // Names only: an ARN is a clear error.
        #expect(throws: StorageError.self) {
            _ = try LambdaInvoker(function: "arn:aws:lambda:us-east-1:123456789012:function:x", region: "us-east-1", accessKey: key, secretKey: secret)
        }
    }
}
