package nectr.peer.model;

import java.io.Serializable;
import java.util.List;

/** SUID test: fields with every combination of modifiers that matters for the hash. */
public class SuidFields implements Serializable {
    public volatile int volatileField;
    public transient int transientField;
    private static int privateStatic;
    private transient String privateTransient;
    private static transient long privateStaticTransient;
    protected static final List<String> PROTECTED_STATIC = List.of();
    public final double finalField = 1.5;
    char packageChar;
    private Object[][] arrays;
    protected SuidFields self;
}
