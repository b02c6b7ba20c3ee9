package nectr.peer.model;

/** Subclass of {@link Base}: two levels of class data. */
public class Derived extends Base {
    private static final long serialVersionUID = 6L;

    public String derivedField;

    public Derived() {
    }

    public Derived(int baseField, String derivedField) {
        this.baseField = baseField;
        this.derivedField = derivedField;
    }
}
