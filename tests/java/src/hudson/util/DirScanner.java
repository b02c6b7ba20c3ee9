package hudson.util;

/** `hudson.util.DirScanner` (SUID 1, no fields): what FilePath$Archive scans. */
public abstract class DirScanner implements java.io.Serializable {
    private static final long serialVersionUID = 1L;

    /**
     * `DirScanner$Glob` (SUID 1): Ant includes/excludes. With empty includes and null excludes
     * Jenkins falls back to DirScanner$Full (every file and directory, no default excludes).
     */
    public static class Glob extends DirScanner {
        private static final long serialVersionUID = 1L;
        private final String includes;
        private final String excludes;
        private boolean useDefaultExcludes = true;
        private final java.nio.file.OpenOption[] openOptions = new java.nio.file.OpenOption[0];

        public Glob(String includes, String excludes, boolean useDefaultExcludes) {
            this.includes = includes;
            this.excludes = excludes;
            this.useDefaultExcludes = useDefaultExcludes;
        }
    }
}
