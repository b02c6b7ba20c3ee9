package hudson.remoting;

/** Marker interface added to every remoting proxy. */
public interface IReadResolve {
    Object readResolve();
}
