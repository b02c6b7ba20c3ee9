package hudson.util.io;

/** `hudson.util.io.ArchiverFactory` (SUID 1, no fields). */
public abstract class ArchiverFactory implements java.io.Serializable {
    private static final long serialVersionUID = 1L;

    /** `ArchiverFactory$TarArchiverFactory` (SUID 1; method): ArchiverFactory.TARGZ has GZIP. */
    public static final class TarArchiverFactory extends ArchiverFactory {
        private static final long serialVersionUID = 1L;
        private final hudson.FilePath.TarCompression method;

        public TarArchiverFactory(hudson.FilePath.TarCompression method) {
            this.method = method;
        }
    }
}
