package hudson.remoting;

import java.io.Serializable;

/** Legacy response holder (SUID 1; isException, response). */
public final class UserResponse<RSP, EXC extends Throwable> implements Serializable {
    private static final long serialVersionUID = 1L;
    private final byte[] response;
    private final boolean isException;

    public UserResponse(byte[] response, boolean isException) {
        this.response = response;
        this.isException = isException;
    }
    public byte[] getResponse() { return response; }
    public boolean isException() { return isException; }
}
