package hudson;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/**
 * Wire twin of hudson.FilePath (SUID 1). Serial fields: remote and urlFactory (a
 * `hudson.FilePath$UrlFactory`, null on the wire, as Jenkins 2.460 writes it). The custom
 * writeObject writes the default fields and then one boolean: true when the path is local to
 * the writer. The controller sends agent paths, so it writes false.
 */
public final class FilePath implements Serializable {
    private static final long serialVersionUID = 1L;

    private String remote;
    /** Declared for the descriptor; always null (Jenkins sets it only in tests). */
    @SuppressWarnings("unused") private UrlFactory urlFactory;
    /** Stands in for the transient channel: true = local to the writer (channel == null). */
    private transient boolean localToWriter;

    public FilePath(String remote, boolean localToWriter) {
        this.remote = remote;
        this.localToWriter = localToWriter;
    }

    public String getRemote() { return remote; }
    public boolean isLocalToWriter() { return localToWriter; }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        oos.defaultWriteObject();
        oos.writeBoolean(localToWriter);
    }

    private void readObject(ObjectInputStream ois) throws IOException, ClassNotFoundException {
        ois.defaultReadObject();
        localToWriter = ois.readBoolean();
    }

    /** What FilePath.asCallableWith does: wrap a FileCallable so it runs on this path. */
    public <V> hudson.remoting.Callable<V, IOException> asCallableWith(FileCallable<V> task) {
        return new CallableWith<>(task);
    }

    @Override
    public String toString() { return remote; }

    /** `FilePath$FileCallableWrapper` (SUID 1): what FilePath.act(FileCallable) sends. */
    public static final class FileCallableWrapper<T> implements hudson.remoting.Callable<T, IOException> {
        private static final long serialVersionUID = 1L;
        private final FileCallable<T> callable;
        private final FilePath filePath;

        public FileCallableWrapper(FileCallable<T> callable, FilePath filePath) {
            this.callable = callable;
            this.filePath = filePath;
        }

        @Override
        public T call() throws IOException {
            throw new UnsupportedOperationException("simulator");
        }

        /** UserRequest.toString is the inner callable's, as in Jenkins. */
        @Override
        public String toString() {
            return String.valueOf(callable);
        }

        public FileCallable<T> getCallable() { return callable; }
        public FilePath getFilePath() { return filePath; }
    }

    /** `FilePath$UrlFactory`: not serializable; only the type of the null field urlFactory. */
    static class UrlFactory {
    }

    /** `FilePath$Mkdirs` (SUID 1): create the directory and its parents; Boolean. */
    public static final class Mkdirs extends jenkins.MasterToSlaveFileCallable<Boolean> {
        private static final long serialVersionUID = 1L;
    }

    /** `FilePath$IsDirectory` (SUID 1): Boolean. */
    public static final class IsDirectory extends jenkins.MasterToSlaveFileCallable<Boolean> {
        private static final long serialVersionUID = 1L;
    }

    /** `FilePath$Exists` (SUID 1): Boolean. */
    public static final class Exists extends jenkins.MasterToSlaveFileCallable<Boolean> {
        private static final long serialVersionUID = 1L;
    }

    /** `FilePath$Delete` (SUID 1): delete one file. */
    public static final class Delete extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 1L;
    }

    /** `FilePath$DeleteRecursive` (SUID 1): delete a tree (deleteDir, durable-task cleanup). */
    public static final class DeleteRecursive extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 1L;
    }

    /** `FilePath$LastModified` (SUID 1): the durable-task heartbeat; Long (0 if missing). */
    public static final class LastModified extends jenkins.MasterToSlaveFileCallable<Long> {
        private static final long serialVersionUID = 1L;
    }

    /** `FilePath$Chmod` (SUID 1; mask): durable-task sends it for a script starting with #!. */
    public static final class Chmod extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 1L;
        private final int mask;

        public Chmod(int mask) {
            this.mask = mask;
        }
    }

    /** `FilePath$Write` (SUID 1; content, encoding): writeFile, script.sh, a recorded exit status. */
    public static final class Write extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 1L;
        private final String content;
        private final String encoding;

        public Write(String content, String encoding) {
            this.content = content;
            this.encoding = encoding;
        }
    }

    /** `FilePath$CreateTextTempFile` (SUID 1): the freestyle script file; returns its path. */
    public static final class CreateTextTempFile extends jenkins.MasterToSlaveFileCallable<String> {
        private static final long serialVersionUID = 1L;
        private final boolean inThisDirectory;
        private final String prefix;
        private final String suffix;
        private final String contents;

        public CreateTextTempFile(boolean inThisDirectory, String prefix, String suffix, String contents) {
            this.inThisDirectory = inThisDirectory;
            this.prefix = prefix;
            this.suffix = suffix;
            this.contents = contents;
        }
    }

    /**
     * `FilePath$Archive` (stash): in 2.460 a class (SUID 1) extending MasterToSlaveFileCallable
     * (a record since 2.485). Returns the Integer count of entries.
     */
    public static final class Archive extends jenkins.MasterToSlaveFileCallable<Integer> {
        private static final long serialVersionUID = 1L;
        private final hudson.util.io.ArchiverFactory factory;
        private final java.io.OutputStream out;
        private final hudson.util.DirScanner scanner;
        private final String verificationRoot = null;
        private final java.nio.file.OpenOption[] openOptions = new java.nio.file.OpenOption[0];

        public Archive(hudson.util.io.ArchiverFactory factory, hudson.remoting.RemoteOutputStream out,
                hudson.util.DirScanner scanner) {
            this.factory = factory;
            this.out = out;
            this.scanner = scanner;
        }
    }

    /**
     * `FilePath$CopyRecursiveRemoteToLocal` (SUID 1; archiveArtifacts): a tar of the scanner's
     * files into a remote-to-local Pipe; Integer.
     */
    public static final class CopyRecursiveRemoteToLocal extends jenkins.MasterToSlaveFileCallable<Integer> {
        private static final long serialVersionUID = 1L;
        private final hudson.remoting.Pipe pipe;
        private final hudson.util.DirScanner scanner;
        private final TarCompression compression;
        private final String filenamesEncoding;

        public CopyRecursiveRemoteToLocal(hudson.remoting.Pipe pipe, hudson.util.DirScanner scanner,
                TarCompression compression, String filenamesEncoding) {
            this.pipe = pipe;
            this.scanner = scanner;
            this.compression = compression;
            this.filenamesEncoding = filenamesEncoding;
        }
    }

    /** `FilePath$ExplicitlySpecifiedDirScanner` (SUID 1; files: archive path → workspace path). */
    public static final class ExplicitlySpecifiedDirScanner extends hudson.util.DirScanner {
        private static final long serialVersionUID = 1L;
        private final java.util.Map<String, String> files;

        public ExplicitlySpecifiedDirScanner(java.util.Map<String, String> files) {
            this.files = files;
        }
    }

    /** `FilePath$CopyTo`: copy the file into {@code out} (a RemoteOutputStream), then close it. */
    public static final class CopyTo extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 4088559042349254141L;
        /** Declared java.io.OutputStream, as in Jenkins; the value is a RemoteOutputStream. */
        private final java.io.OutputStream out;

        public CopyTo(hudson.remoting.RemoteOutputStream out) {
            this.out = out;
        }
    }

    /** `FilePath$Read` (readFile, via actAsync): stream the file into {@code p}, then EOF. */
    public static final class Read extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 1L;
        private final java.nio.file.OpenOption[] openOptions = new java.nio.file.OpenOption[0];
        private final hudson.remoting.Pipe p;
        private final String verificationRoot = null;

        public Read(hudson.remoting.Pipe p) {
            this.p = p;
        }
    }

    /** `FilePath$WritePipe`: open the file for writing and return it as a RemoteOutputStream. */
    public static final class WritePipe extends jenkins.MasterToSlaveFileCallable<hudson.remoting.RemoteOutputStream> {
        private static final long serialVersionUID = 1L;
    }

    /**
     * `FilePath$TarCompression`: the enum (stream SUID 0) written by name. Jenkins gives each
     * constant a body, which the stream does not show (constants are written with the
     * declaring enum's descriptor).
     */
    public enum TarCompression {
        NONE,
        GZIP
    }

    /**
     * `FilePath$UntarRemote` (SUID 1; unstash, FilePath.untar across channels): read a tar
     * (compressed as {@code compression}) from {@code in} and extract it into the target
     * directory. {@code name} is the source's file name, for messages. Returns null.
     */
    public static final class UntarRemote extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 1L;
        private final TarCompression compression;
        private final hudson.remoting.RemoteInputStream in;
        private final String name;

        public UntarRemote(String name, TarCompression compression, hudson.remoting.RemoteInputStream in) {
            this.compression = compression;
            this.in = in;
            this.name = name;
        }

        public TarCompression getCompression() { return compression; }
        public hudson.remoting.RemoteInputStream getIn() { return in; }
        public String getName() { return name; }
    }

    /** FilePath$FileCallable. */
    public interface FileCallable<T> extends Serializable {
    }

    /** FilePath$CallableWith: inner class (SUID 1) with fields task and the synthetic this$0. */
    private class CallableWith<V> implements hudson.remoting.Callable<V, IOException> {
        private static final long serialVersionUID = 1L;
        private final FileCallable<V> task;

        CallableWith(FileCallable<V> task) {
            this.task = task;
        }

        @Override
        public V call() throws IOException {
            throw new UnsupportedOperationException("simulator");
        }

        @Override
        public String toString() {
            return "hudson.FilePath$CallableWith(" + task + " on " + remote + ")";
        }
    }
}
