package hudson.model;

/** `hudson.model.StreamBuildListener` (SUID 1, no fields): the freestyle build listener. */
public class StreamBuildListener extends hudson.util.StreamTaskListener {
    private static final long serialVersionUID = 1L;

    public StreamBuildListener(int rosOid, String charset) {
        super(rosOid, charset);
    }
}
