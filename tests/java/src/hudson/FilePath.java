package hudson;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/**
 * Wire twin of hudson.FilePath (SUID 1). Serial field: remote. The custom writeObject writes
 * the default fields and then one boolean: true when the path is local to the writer. The
 * controller sends agent paths, so it writes false.
 */
public final class FilePath implements Serializable {
    private static final long serialVersionUID = 1L;

    private String remote;
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
    }

    /** `FilePath$CopyTo`: copy the file into {@code out} (a RemoteOutputStream), then close it. */
    public static final class CopyTo extends jenkins.MasterToSlaveFileCallable<Void> {
        private static final long serialVersionUID = 4088559042349254141L;
        private final hudson.remoting.RemoteOutputStream out;

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
