package nectr.peer.model;

import java.io.Externalizable;
import java.io.ObjectInput;
import java.io.ObjectOutput;

/** Externalizable whose writeExternal writes nothing. */
public class ExtEmpty implements Externalizable {
    private static final long serialVersionUID = 23L;

    /** Not written: Externalizable classes write only what writeExternal writes. */
    public int ignored = 5;

    public ExtEmpty() {
    }

    @Override
    public void writeExternal(ObjectOutput out) {
    }

    @Override
    public void readExternal(ObjectInput in) {
    }
}
