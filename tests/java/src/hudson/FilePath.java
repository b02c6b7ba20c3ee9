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
