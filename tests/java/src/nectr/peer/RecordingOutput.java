package nectr.peer;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.ObjectOutput;
import java.util.ArrayList;
import java.util.List;

/**
 * An ObjectOutput that records what a writeExternal or custom writeData method writes:
 * a list of items, each either a {@link Block} (all primitive bytes written between two
 * objects, merged) or an object passed to writeObject (possibly null).
 * Primitive encodings are those of DataOutputStream, which equal ObjectOutputStream's.
 */
final class RecordingOutput implements ObjectOutput {
    /** Primitive data written between two objects. */
    record Block(byte[] bytes) {
    }

    private final List<Object> items = new ArrayList<>();
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
    private final DataOutputStream data = new DataOutputStream(pending);

    /** The recorded items; ends the current block. */
    List<Object> items() {
        endBlock();
        return items;
    }

    private void endBlock() {
        if (pending.size() > 0) {
            items.add(new Block(pending.toByteArray()));
            pending.reset();
        }
    }

    @Override
    public void writeObject(Object obj) {
        endBlock();
        items.add(obj);
    }

    @Override
    public void write(int b) throws IOException {
        data.write(b);
    }

    @Override
    public void write(byte[] b) throws IOException {
        data.write(b);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        data.write(b, off, len);
    }

    @Override
    public void writeBoolean(boolean v) throws IOException {
        data.writeBoolean(v);
    }

    @Override
    public void writeByte(int v) throws IOException {
        data.writeByte(v);
    }

    @Override
    public void writeShort(int v) throws IOException {
        data.writeShort(v);
    }

    @Override
    public void writeChar(int v) throws IOException {
        data.writeChar(v);
    }

    @Override
    public void writeInt(int v) throws IOException {
        data.writeInt(v);
    }

    @Override
    public void writeLong(long v) throws IOException {
        data.writeLong(v);
    }

    @Override
    public void writeFloat(float v) throws IOException {
        data.writeFloat(v);
    }

    @Override
    public void writeDouble(double v) throws IOException {
        data.writeDouble(v);
    }

    @Override
    public void writeBytes(String s) throws IOException {
        data.writeBytes(s);
    }

    @Override
    public void writeChars(String s) throws IOException {
        data.writeChars(s);
    }

    @Override
    public void writeUTF(String s) throws IOException {
        data.writeUTF(s);
    }

    @Override
    public void flush() {
    }

    @Override
    public void close() {
    }
}
