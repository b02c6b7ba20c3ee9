package org.jvnet.hudson;

import java.io.Serializable;

/** org.jvnet.hudson.MemoryUsage (SUID 1; four long fields). */
public class MemoryUsage implements Serializable {
    private static final long serialVersionUID = 1L;
    public final long totalPhysicalMemory;
    public final long availablePhysicalMemory;
    public final long totalSwapSpace;
    public final long availableSwapSpace;

    public MemoryUsage(long totalPhysicalMemory, long availablePhysicalMemory, long totalSwapSpace,
            long availableSwapSpace) {
        this.totalPhysicalMemory = totalPhysicalMemory;
        this.availablePhysicalMemory = availablePhysicalMemory;
        this.totalSwapSpace = totalSwapSpace;
        this.availableSwapSpace = availableSwapSpace;
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "{totalPhysicalMemory=" + totalPhysicalMemory + ",availablePhysicalMemory="
                + availablePhysicalMemory + ",totalSwapSpace=" + totalSwapSpace + ",availableSwapSpace="
                + availableSwapSpace + "}";
    }
}
