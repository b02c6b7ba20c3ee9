package nectr.peer.model;

import java.io.Serializable;

/** A serializable record (read back through its canonical constructor). */
public record Span(int from, int to, String label) implements Serializable {
    private static final long serialVersionUID = 28L;
}
