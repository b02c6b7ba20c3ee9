package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.util.Map;

/**
 * Declares fields but its writeObject never calls defaultWriteObject/writeFields: the class
 * data is only custom data (an int and an object). The Rust side treats this class name
 * specially; the oracle shows "fields":{}.
 */
public class NoDefaultFields implements Serializable {
    private static final long serialVersionUID = 19L;

    public int a;
    public Object b;

    public NoDefaultFields() {
    }

    public NoDefaultFields(int a, Object b) {
        this.a = a;
        this.b = b;
    }

    private void writeObject(ObjectOutputStream out) throws IOException {
        writeData(out);
    }

    /** No default fields were written. */
    private Map<String, Object> streamFields() {
        return Map.of();
    }

    private void writeData(ObjectOutput out) throws IOException {
        out.writeInt(a);
        out.writeObject(b);
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        a = in.readInt();
        b = in.readObject();
    }
}
