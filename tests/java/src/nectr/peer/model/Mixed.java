package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.util.Arrays;

/**
 * Custom writeObject mixing default fields, primitives of every kind, writeUTF,
 * a run of {@code blockLen} raw bytes (to produce short, long and split block data records)
 * and nested objects (including this object itself, a back reference).
 */
public class Mixed implements Serializable {
    private static final long serialVersionUID = 16L;

    public int blockLen;
    public String label;
    public Object nested;

    public Mixed() {
    }

    public Mixed(int blockLen, String label, Object nested) {
        this.blockLen = blockLen;
        this.label = label;
        this.nested = nested;
    }

    /** The raw bytes written by writeData: a deterministic pattern of blockLen bytes. */
    private byte[] rawBytes() {
        byte[] raw = new byte[blockLen];
        for (int i = 0; i < raw.length; i++) {
            raw[i] = (byte) (i * 31 + 7);
        }
        return raw;
    }

    private void writeObject(ObjectOutputStream out) throws IOException {
        out.defaultWriteObject();
        writeData(out);
    }

    private void writeData(ObjectOutput out) throws IOException {
        out.writeBoolean(true);
        out.writeByte(-2);
        out.writeShort(-300);
        out.writeChar('\u00e9');
        out.writeInt(blockLen);
        out.writeLong(Long.MIN_VALUE + 1);
        out.writeFloat(1.5f);
        out.writeDouble(-2.25);
        out.writeUTF(label == null ? "" : label);
        out.write(rawBytes());
        out.writeObject(nested);
        out.writeInt(-1);
        out.writeObject(this);
        out.writeObject(new int[] {blockLen, 1, 2});
        out.writeUTF("end\u0000\u20ac");
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        boolean ok = in.readBoolean() && in.readByte() == -2 && in.readShort() == -300
                && in.readChar() == '\u00e9' && in.readInt() == blockLen
                && in.readLong() == Long.MIN_VALUE + 1 && in.readFloat() == 1.5f
                && in.readDouble() == -2.25 && in.readUTF().equals(label == null ? "" : label);
        byte[] raw = new byte[blockLen];
        in.readFully(raw);
        ok = ok && Arrays.equals(raw, rawBytes());
        ok = ok && in.readObject() == nested && in.readInt() == -1 && in.readObject() == this;
        ok = ok && Arrays.equals((int[]) in.readObject(), new int[] {blockLen, 1, 2});
        ok = ok && in.readUTF().equals("end\u0000\u20ac");
        if (!ok) {
            throw new IOException("Mixed: unexpected custom data");
        }
    }
}
