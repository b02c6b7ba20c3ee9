package hudson.remoting;

import java.io.Serializable;

/** Minimal wire twin of remoting's Response (SUID 1; id, lastIoId, exception, returnValue). */
public final class Response<RSP extends Serializable, EXC extends Throwable> extends Command {
    private static final long serialVersionUID = 1L;

    final int id;
    final int lastIoId;
    final EXC exception;
    final RSP returnValue;

    public Response(int id, int lastIoId, RSP returnValue, EXC exception) {
        super(false);
        this.id = id;
        this.lastIoId = lastIoId;
        this.returnValue = returnValue;
        this.exception = exception;
    }

    public int getId() { return id; }
    public int getLastIoId() { return lastIoId; }
    public Throwable getException() { return exception; }
    public Serializable getReturnValue() { return returnValue; }
}
