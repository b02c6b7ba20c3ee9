package nectr.peer.model;

/** Interface implemented by dynamic proxies. */
public interface Greeter {
    String greet(String who);
}
