//! Descriptors of the Jenkins, plugin and JDK classes handlers write in their answers. Each
//! matches the class of Jenkins 2.460 and its plugins exactly (serialVersionUID, flags,
//! fields); `agent/tests/real_classes.rs` checks every one of them against the real jars.

use crate::javaser::{ClassSpec, Registry};

/// `hudson.remoting.RemoteInvocationHandler`: the handler of an exported object's proxy.
pub const INVOCATION_HANDLER: &str = "hudson.remoting.RemoteInvocationHandler";
/// `hudson.remoting.IReadResolve`: the second interface of every remoting proxy.
pub const IREAD_RESOLVE: &str = "hudson.remoting.IReadResolve";
/// `hudson.EnvVars`.
pub const ENV_VARS: &str = "hudson.EnvVars";
/// `hudson.FilePath`.
pub const FILE_PATH: &str = "hudson.FilePath";

/// The agent's registry: remoting's classes plus everything the handlers write.
pub fn registry() -> Registry {
    let mut r = crate::remoting::classes::registry();
    for spec in specs() {
        r.declare(spec);
    }
    r
}

fn specs() -> Vec<ClassSpec> {
    let fse = "java.nio.file.FileSystemException";
    vec![
        // Exceptions handlers raise (agent-callables.md §1.2, §1.10).
        ClassSpec::new("hudson.AbortException", 1).extends("java.io.IOException"),
        ClassSpec::new("java.nio.file.AccessDeniedException", 4943049599949219617).extends(fse),
        ClassSpec::new(
            "java.nio.file.DirectoryNotEmptyException",
            3056667871802779003,
        )
        .extends(fse),
        ClassSpec::new(
            "java.nio.file.FileAlreadyExistsException",
            7579540934498831181,
        )
        .extends(fse),
        ClassSpec::new("java.nio.file.NotDirectoryException", -9011457427178200199).extends(fse),
        ClassSpec::new("java.lang.InterruptedException", 6700697376100628473)
            .extends("java.lang.Exception"),
        ClassSpec::new("java.lang.IllegalArgumentException", -5365630128856068164)
            .extends("java.lang.RuntimeException"),
        ClassSpec::new(
            "java.lang.UnsupportedOperationException",
            -1242599979055084673,
        )
        .extends("java.lang.RuntimeException"),
        ClassSpec::new("java.net.URI", -6052424284110960213)
            .write_method()
            .field("string", "Ljava/lang/String;"),
        // Collections and maps (§1.10).
        ClassSpec::new("java.util.TreeMap", 919286545866124006)
            .write_method()
            .field("comparator", "Ljava/util/Comparator;"),
        ClassSpec::new(
            "java.lang.String$CaseInsensitiveComparator",
            8575799808933029326,
        ),
        ClassSpec::new("java.util.LinkedHashMap", 3801124242820219131)
            .extends("java.util.HashMap")
            .field("accessOrder", "Z"),
        ClassSpec::new("java.util.HashSet", -5024744406713321676).write_method(),
        ClassSpec::array("[Ljava.lang.String;"),
        ClassSpec::array("[Ljava.lang.Object;"),
        ClassSpec::array("[B"),
        ClassSpec::array("[Lhudson.FilePath;"),
        // Bring-up and monitors (§A, §B).
        ClassSpec::new(
            "hudson.node_monitors.DiskSpaceMonitorDescriptor$DiskSpace",
            2,
        )
        .field("size", "J")
        .field("threshold", "J")
        .field("totalSize", "J")
        .field("warningThreshold", "J")
        .field("path", "Ljava/lang/String;")
        .field("trigger", "Ljava/lang/Class;"),
        ClassSpec::new("org.jvnet.hudson.MemoryUsage", 1)
            .field("availablePhysicalMemory", "J")
            .field("availableSwapSpace", "J")
            .field("totalPhysicalMemory", "J")
            .field("totalSwapSpace", "J"),
        ClassSpec::new(
            "hudson.node_monitors.SwapSpaceMonitor$MemoryUsage2",
            2216994637932270352,
        )
        .extends("org.jvnet.hudson.MemoryUsage"),
        ClassSpec::new(
            "hudson.model.Slave$GetClockDifference3",
            -6655128034486338777,
        )
        .field("remoteTime", "J")
        .field("startTime", "J"),
        ClassSpec::new("hudson.node_monitors.ResponseTimeMonitor$Step3", 1)
            .field("start", "J")
            .field("cur", "Lhudson/node_monitors/ResponseTimeMonitor$Data;"),
        // The build's environment (§A12).
        ClassSpec::enumeration("hudson.Platform"),
        ClassSpec::new(ENV_VARS, 4320331661987259022)
            .extends("java.util.TreeMap")
            .field("platform", "Lhudson/Platform;"),
        // Paths handed back to the controller (§1.6).
        ClassSpec::new(FILE_PATH, 1)
            .write_method()
            .field("remote", "Ljava/lang/String;")
            .field("urlFactory", "Lhudson/FilePath$UrlFactory;"),
        // Exported objects and the streams of a process (§1.8, §C).
        ClassSpec::new(INVOCATION_HANDLER, 1)
            .write_method()
            .field("autoUnexportByCaller", "Z")
            .field("goingHome", "Z")
            .field("oid", "I")
            .field("recordCreatedAt", "Z")
            .field("userProxy", "Z")
            .field("userSpace", "Z")
            .field("origin", "Ljava/lang/Throwable;"),
        ClassSpec::new("hudson.Launcher$IOTriplet", 1)
            .field("stderr", "Ljava/io/InputStream;")
            .field("stdin", "Ljava/io/OutputStream;")
            .field("stdout", "Ljava/io/InputStream;"),
        ClassSpec::new(crate::remoting::classes::REMOTE_INPUT_STREAM, 1)
            .write_method()
            .field("autoUnexport", "Z")
            .field("greedy", "Z"),
        // Fingerprints (archiveArtifacts fingerprint: true, §D.5).
        ClassSpec::new("hudson.tasks.Fingerprinter$Record", 1)
            .field("produced", "Z")
            .field("fileName", "Ljava/lang/String;")
            .field("md5sum", "Ljava/lang/String;")
            .field("relativePath", "Ljava/lang/String;"),
        // The workspace browser (§D.7).
        ClassSpec::new("hudson.model.DirectoryBrowserSupport$Path", 1)
            .field("isFolder", "Z")
            .field("isReadable", "Z")
            .field("lastModified", "J")
            .field("size", "J")
            .field("href", "Ljava/lang/String;")
            .field("title", "Ljava/lang/String;"),
        ClassSpec::new(
            "hudson.model.DirectoryBrowserSupport$BuildChildPathsResult",
            1,
        )
        .field("containsSymLink", "Z")
        .field("containsTmpDir", "Z")
        .field("glob", "Ljava/util/List;"),
        // durable-task (§D.2).
        ClassSpec::enumeration("org.jenkinsci.plugins.durabletask.AgentInfo$OsType"),
        ClassSpec::new(
            "org.jenkinsci.plugins.durabletask.AgentInfo",
            7599995179651071957,
        )
        .field("binaryCached", "Z")
        .field("binaryCompatible", "Z")
        .field("cachingAvailable", "Z")
        .field("architecture", "Ljava/lang/String;")
        .field("binaryPath", "Ljava/lang/String;")
        .field("os", "Lorg/jenkinsci/plugins/durabletask/AgentInfo$OsType;"),
    ]
}

/// Every class handlers write, by name (for the check against the real jars).
pub fn declared() -> Vec<String> {
    specs().into_iter().map(|s| s.name).collect()
}
