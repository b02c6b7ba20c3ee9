package nectr.peer.model;

/** A NON-serializable superclass with a no-arg constructor; its state is not written. */
public class PlainBase {
    public int plain = 42;

    public PlainBase() {
    }
}
