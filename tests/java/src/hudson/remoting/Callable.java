package hudson.remoting;

import java.io.Serializable;

/** remoting's Callable interface (only the name matters on the wire). */
public interface Callable<V, T extends Throwable> extends Serializable {
    V call() throws T;
}
