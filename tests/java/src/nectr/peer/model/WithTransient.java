package nectr.peer.model;

import java.io.Serializable;

/** Transient and static fields, which must not appear in the stream. */
public class WithTransient implements Serializable {
    private static final long serialVersionUID = 15L;

    public static int staticCounter = 99;
    public static final String CONSTANT = "constant";

    public int kept;
    public transient int skipped;
    public transient String skippedText;
    public String keptText;

    public WithTransient() {
    }

    public WithTransient(int kept, int skipped, String skippedText, String keptText) {
        this.kept = kept;
        this.skipped = skipped;
        this.skippedText = skippedText;
        this.keptText = keptText;
    }
}
