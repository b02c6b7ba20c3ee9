package nectr.peer.model;

/** Second interface implemented by dynamic proxies. */
public interface Counter {
    int count();
}
