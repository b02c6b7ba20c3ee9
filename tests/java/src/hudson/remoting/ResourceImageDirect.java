package hudson.remoting;

/** Wire twin of remoting's ResourceImageDirect (SUID 1; payload): the image itself. */
public final class ResourceImageDirect extends ResourceImageRef {
    private static final long serialVersionUID = 1L;
    private final byte[] payload;

    public ResourceImageDirect(byte[] payload) {
        this.payload = payload;
    }
}
