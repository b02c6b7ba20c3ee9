//! Descriptors of the remoting and Jenkins classes the agent writes, with the
//! serialVersionUIDs of `../shared/reference/remoting-protocol.md` §5 and
//! `agent-callables.md` §A/§B (explicit values from the sources, computed ones where the
//! class declares none).

use crate::javaser::{ClassSpec, Registry};

/// `hudson.remoting.Command`
pub const COMMAND: &str = "hudson.remoting.Command";
/// `hudson.remoting.Request`
pub const REQUEST: &str = "hudson.remoting.Request";
/// `hudson.remoting.Response`
pub const RESPONSE: &str = "hudson.remoting.Response";
/// `hudson.remoting.UserRequest`
pub const USER_REQUEST: &str = "hudson.remoting.UserRequest";
/// `hudson.remoting.UserRequest$NormalResponse`
pub const NORMAL_RESPONSE: &str = "hudson.remoting.UserRequest$NormalResponse";
/// `hudson.remoting.UserRequest$ExceptionResponse`
pub const EXCEPTION_RESPONSE: &str = "hudson.remoting.UserRequest$ExceptionResponse";
/// `hudson.remoting.ProxyException`
pub const PROXY_EXCEPTION: &str = "hudson.remoting.ProxyException";
/// `hudson.remoting.Capability`
pub const CAPABILITY: &str = "hudson.remoting.Capability";
/// `hudson.remoting.Channel$CloseCommand`
pub const CLOSE_COMMAND: &str = "hudson.remoting.Channel$CloseCommand";
/// `hudson.remoting.ProxyOutputStream$Chunk`
pub const STREAM_CHUNK: &str = "hudson.remoting.ProxyOutputStream$Chunk";
/// `hudson.remoting.ProxyOutputStream$Flush`
pub const STREAM_FLUSH: &str = "hudson.remoting.ProxyOutputStream$Flush";
/// `hudson.remoting.ProxyOutputStream$EOF`
pub const STREAM_EOF: &str = "hudson.remoting.ProxyOutputStream$EOF";
/// `hudson.remoting.ProxyOutputStream$Unexport`
pub const STREAM_UNEXPORT: &str = "hudson.remoting.ProxyOutputStream$Unexport";
/// `hudson.remoting.RemoteOutputStream`
pub const REMOTE_OUTPUT_STREAM: &str = "hudson.remoting.RemoteOutputStream";
/// `hudson.remoting.RemoteInvocationHandler$RPCRequest`
pub const RPC_REQUEST: &str = "hudson.remoting.RemoteInvocationHandler$RPCRequest";
/// `hudson.remoting.RemoteInvocationHandler$UserRPCRequest`
pub const USER_RPC_REQUEST: &str = "hudson.remoting.RemoteInvocationHandler$UserRPCRequest";
/// `hudson.remoting.UnexportCommand`
pub const UNEXPORT_COMMAND: &str = "hudson.remoting.UnexportCommand";
/// `hudson.remoting.Request$Cancel`
pub const CANCEL: &str = "hudson.remoting.Request$Cancel";
/// `hudson.remoting.ProxyOutputStream$Ack`: the reader consumed `size` bytes of stream `oid`.
pub const STREAM_ACK: &str = "hudson.remoting.ProxyOutputStream$Ack";
/// `hudson.remoting.ProxyOutputStream$NotifyDeadWriter`: the reader's sink failed.
pub const STREAM_DEAD: &str = "hudson.remoting.ProxyOutputStream$NotifyDeadWriter";
/// `hudson.remoting.ProxyInputStream$Chunk`: a request to read from an exported InputStream.
pub const INPUT_CHUNK: &str = "hudson.remoting.ProxyInputStream$Chunk";
/// `hudson.remoting.ProxyInputStream$Buffer`: what such a read returns.
pub const INPUT_BUFFER: &str = "hudson.remoting.ProxyInputStream$Buffer";
/// `hudson.remoting.ProxyInputStream$EOF`: the reader closed an exported InputStream.
pub const INPUT_EOF: &str = "hudson.remoting.ProxyInputStream$EOF";
/// `hudson.remoting.RemoteInputStream`
pub const REMOTE_INPUT_STREAM: &str = "hudson.remoting.RemoteInputStream";
/// `hudson.remoting.Pipe`
pub const PIPE: &str = "hudson.remoting.Pipe";
/// `hudson.remoting.Pipe$ConnectCommand`: the reader of a local-to-remote pipe names its sink.
pub const PIPE_CONNECT: &str = "hudson.remoting.Pipe$ConnectCommand";
/// `hudson.remoting.Channel$IOSyncer`
pub const IO_SYNCER: &str = "hudson.remoting.Channel$IOSyncer";

/// The registry of everything the agent writes: JDK classes plus remoting and Jenkins ones.
pub fn registry() -> Registry {
    let mut r = Registry::with_jdk();
    for spec in specs() {
        r.declare(spec);
    }
    r
}

/// Every class remoting writes, by name (for the check against the real jars).
pub fn declared() -> Vec<String> {
    specs().into_iter().map(|s| s.name).collect()
}

fn specs() -> Vec<ClassSpec> {
    vec![
        ClassSpec::new(CAPABILITY, 1).field("mask", "J"),
        ClassSpec::new(COMMAND, 1).field("createdAt", "Ljava/lang/Exception;"),
        ClassSpec::new(REQUEST, 1)
            .extends(COMMAND)
            .field("id", "I")
            .field("lastIoId", "I")
            .field("response", "Lhudson/remoting/Response;"),
        ClassSpec::new(RESPONSE, 1)
            .extends(COMMAND)
            .field("id", "I")
            .field("lastIoId", "I")
            .field("exception", "Ljava/lang/Throwable;")
            .field("returnValue", "Ljava/io/Serializable;"),
        ClassSpec::new(USER_REQUEST, 1)
            .extends(REQUEST)
            .field(
                "classLoaderProxy",
                "Lhudson/remoting/RemoteClassLoader$IClassLoader;",
            )
            .field("request", "[B")
            .field("toString", "Ljava/lang/String;"),
        ClassSpec::new("hudson.remoting.RemoteClassLoader$RemoteIClassLoader", 1).field("oid", "I"),
        ClassSpec::new(NORMAL_RESPONSE, 1).field("response", "[B"),
        ClassSpec::new(EXCEPTION_RESPONSE, 1)
            .field("proxyResponse", "[B")
            .field("rawResponse", "[B"),
        ClassSpec::new(PROXY_EXCEPTION, 1332793125360580541).extends("java.io.IOException"),
        ClassSpec::new(CLOSE_COMMAND, 972857271608138115).extends(COMMAND),
        ClassSpec::new(CANCEL, -1709992419006993208)
            .extends(COMMAND)
            .field("id", "I"),
        ClassSpec::new("hudson.remoting.PingThread$Ping", 1),
        // Streams (remoting-protocol.md §5.6, §5.7).
        ClassSpec::new(STREAM_CHUNK, 1)
            .extends(COMMAND)
            .field("ioId", "I")
            .field("oid", "I")
            .field("requestId", "I")
            .field("buf", "[B"),
        ClassSpec::new(STREAM_EOF, 1)
            .extends(COMMAND)
            .field("ioId", "I")
            .field("oid", "I")
            .field("requestId", "I")
            .field("error", "Ljava/lang/Throwable;"),
        ClassSpec::new(REMOTE_OUTPUT_STREAM, 1).write_method(),
        ClassSpec::new(STREAM_ACK, 1)
            .extends(COMMAND)
            .field("oid", "I")
            .field("size", "I"),
        ClassSpec::new(STREAM_DEAD, 1)
            .extends(COMMAND)
            .field("oid", "I"),
        ClassSpec::new(INPUT_CHUNK, 1)
            .extends(REQUEST)
            .field("len", "I")
            .field("oid", "I"),
        ClassSpec::new(INPUT_BUFFER, 1)
            .field("len", "I")
            .field("buf", "[B"),
        ClassSpec::new(STREAM_UNEXPORT, 1)
            .extends(COMMAND)
            .field("ioId", "I")
            .field("oid", "I"),
        ClassSpec::new(INPUT_EOF, 1)
            .extends(COMMAND)
            .field("oid", "I"),
        ClassSpec::new(PIPE_CONNECT, -9128735897846418140)
            .extends(COMMAND)
            .field("oidPos", "I")
            .field("oidRos", "I"),
        ClassSpec::new(UNEXPORT_COMMAND, 1)
            .extends(COMMAND)
            .field("oid", "I"),
        ClassSpec::new("java.nio.file.FileSystemException", -3055425747967319812)
            .extends("java.io.IOException")
            .field("file", "Ljava/lang/String;")
            .field("other", "Ljava/lang/String;"),
        ClassSpec::new("java.nio.file.NoSuchFileException", -1390291775875351931)
            .extends("java.nio.file.FileSystemException"),
        ClassSpec::new("java.lang.reflect.Proxy", -2222568056686623797)
            .field("h", "Ljava/lang/reflect/InvocationHandler;"),
        // The agent's log (SlaveLogFetcher): JDK 17 forms, read off the JDK's own streams.
        ClassSpec::new("java.util.logging.LogRecord", 5372048053134512534)
            .write_method()
            .field("longThreadID", "J")
            .field("millis", "J")
            .field("nanoAdjustment", "I")
            .field("sequenceNumber", "J")
            .field("threadID", "I")
            .field("level", "Ljava/util/logging/Level;")
            .field("loggerName", "Ljava/lang/String;")
            .field("message", "Ljava/lang/String;")
            .field("resourceBundleName", "Ljava/lang/String;")
            .field("sourceClassName", "Ljava/lang/String;")
            .field("sourceMethodName", "Ljava/lang/String;")
            .field("thrown", "Ljava/lang/Throwable;"),
        ClassSpec::new("java.util.logging.Level", -8176160795706313070)
            .field("value", "I")
            .field("name", "Ljava/lang/String;")
            .field("resourceBundleName", "Ljava/lang/String;"),
    ]
}
