package nectr.peer.model;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectInput;
import java.io.ObjectOutput;

/**
 * Externalizable with primitives, a UTF string and nested objects. The oracle dumper learns
 * what writeExternal writes by calling it with a recording ObjectOutput.
 */
public class ExtRecord implements Externalizable {
    private static final long serialVersionUID = 22L;

    private int id;
    private double score;
    private String title;
    private Object child;

    /** Required public no-arg constructor. */
    public ExtRecord() {
    }

    public ExtRecord(int id, double score, String title, Object child) {
        this.id = id;
        this.score = score;
        this.title = title;
        this.child = child;
    }

    @Override
    public void writeExternal(ObjectOutput out) throws IOException {
        out.writeInt(id);
        out.writeDouble(score);
        out.writeUTF(title);
        out.writeObject(child);
        out.writeBoolean(child == null);
        out.writeObject(title);
    }

    @Override
    public void readExternal(ObjectInput in) throws IOException, ClassNotFoundException {
        id = in.readInt();
        score = in.readDouble();
        title = in.readUTF();
        child = in.readObject();
        if (in.readBoolean() != (child == null) || !title.equals(in.readObject())) {
            throw new IOException("ExtRecord: unexpected external data");
        }
    }
}
