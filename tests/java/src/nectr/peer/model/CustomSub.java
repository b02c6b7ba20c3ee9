package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;

/** Second level with writeObject; writes a nested object graph from inside writeObject. */
public class CustomSub extends CustomBase {
    private static final long serialVersionUID = 21L;

    public Object shared;

    public CustomSub() {
    }

    public CustomSub(long stamp, Object shared) {
        this.stamp = stamp;
        this.shared = shared;
    }

    private void writeObject(ObjectOutputStream out) throws IOException {
        out.defaultWriteObject();
        writeData(out);
    }

    private void writeData(ObjectOutput out) throws IOException {
        out.writeByte(7);
        out.writeObject(shared);
        out.writeObject(new Object[] {shared, "x"});
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        boolean ok = in.readByte() == 7 && in.readObject() == shared;
        Object[] pair = (Object[]) in.readObject();
        if (!ok || pair.length != 2 || pair[0] != shared || !"x".equals(pair[1])) {
            throw new IOException("CustomSub: unexpected custom data");
        }
    }
}
