package nectr.peer.model;

/** A simple enum. */
public enum Color {
    RED, GREEN, BLUE
}
