package hudson.tasks;

/** Holder of `hudson.tasks.ArtifactArchiver$ListFiles`. */
public final class ArtifactArchiver {
    private ArtifactArchiver() {
    }

    /**
     * `ArtifactArchiver$ListFiles` (SUID 1): an Ant scan of files; in 2.460 it returns a
     * Map of archive path → workspace path (a HashMap from a Java agent).
     */
    public static final class ListFiles extends jenkins.MasterToSlaveFileCallable<java.util.Map<String, String>> {
        private static final long serialVersionUID = 1L;
        private final String includes;
        private final String excludes;
        private final boolean defaultExcludes;
        private final boolean caseSensitive;
        private final boolean followSymlinks;

        public ListFiles(String includes, String excludes, boolean defaultExcludes, boolean caseSensitive,
                boolean followSymlinks) {
            this.includes = includes;
            this.excludes = excludes;
            this.defaultExcludes = defaultExcludes;
            this.caseSensitive = caseSensitive;
            this.followSymlinks = followSymlinks;
        }
    }
}
