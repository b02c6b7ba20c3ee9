package org.jenkinsci.plugins.durabletask;

import java.io.Serializable;

/** `org.jenkinsci.plugins.durabletask.AgentInfo` (SUID 7599995179651071957): what GetAgentInfo returns. */
public final class AgentInfo implements Serializable {
    private static final long serialVersionUID = 7599995179651071957L;
    private OsType os;
    private String binaryPath;
    private String architecture;
    private boolean binaryCompatible;
    private boolean binaryCached;
    private boolean cachingAvailable;

    public OsType getOs() { return os; }
    public String getArchitecture() { return architecture; }
    public String getBinaryPath() { return binaryPath; }
    public boolean isBinaryCompatible() { return binaryCompatible; }
    public boolean isBinaryCached() { return binaryCached; }
    public boolean isCachingAvailable() { return cachingAvailable; }

    @Override
    public String toString() {
        return "AgentInfo{os=" + os + ", architecture=" + architecture + ", binaryPath=" + binaryPath
                + ", binaryCompatible=" + binaryCompatible + ", binaryCached=" + binaryCached
                + ", cachingAvailable=" + cachingAvailable + "}";
    }

    /** `AgentInfo$OsType`: an enum (stream SUID 0). */
    public enum OsType {
        DARWIN, LINUX, WINDOWS, FREEBSD, ZOS, UNKNOWN
    }

    /**
     * `AgentInfo$GetAgentInfo` (SUID 1; binaryVersion): sent on the node root before every
     * `sh`; the version is the plugin's (555.v6802fe0f0b_82 in ../shared/jenkins).
     */
    public static final class GetAgentInfo extends jenkins.MasterToSlaveFileCallable<AgentInfo> {
        private static final long serialVersionUID = 1L;
        private final String binaryVersion;

        public GetAgentInfo(String binaryVersion) {
            this.binaryVersion = binaryVersion;
        }
    }
}
