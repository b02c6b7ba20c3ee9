package nectr.peer;

import java.io.ByteArrayOutputStream;
import java.io.DataOutput;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.ObjectStreamException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes one corpus stream with an ObjectOutputStream and, in lock step, its oracle items.
 * Each object is rendered right after it was written, so later mutations cannot leak into
 * the oracle and Throwables show the stack trace that writing filled in.
 */
final class StreamWriter {
    /** Creates the ObjectOutputStream (a plain one or a subclass) over the byte sink. */
    interface Factory {
        ObjectOutputStream create(OutputStream sink) throws IOException;
    }

    /** Writes primitive data to a DataOutput; called once for the stream, once for the oracle. */
    interface Primitives {
        void write(DataOutput out) throws IOException;
    }

    private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    private final ObjectOutputStream out;
    private final Dumper dumper = new Dumper();
    private final List<String> items = new ArrayList<>();
    private final ByteArrayOutputStream pendingBlock = new ByteArrayOutputStream();

    StreamWriter(Factory factory) throws IOException {
        out = factory.create(bytes);
    }

    StreamWriter() throws IOException {
        this(ObjectOutputStream::new);
    }

    /** writeObject for each object, in order. */
    StreamWriter object(Object... objects) throws IOException {
        for (Object o : objects) {
            endBlock();
            out.writeObject(o);
            items.add(dumper.value(o));
        }
        return this;
    }

    /** writeUnshared. */
    StreamWriter unshared(Object o) throws IOException {
        endBlock();
        out.writeUnshared(o);
        items.add(dumper.unshared(o));
        return this;
    }

    /** Top-level primitive data (block data in the stream). */
    StreamWriter primitives(Primitives p) throws IOException {
        p.write(out);
        p.write(new DataOutputStream(pendingBlock));
        return this;
    }

    /** ObjectOutputStream.reset(): TC_RESET. */
    StreamWriter reset() throws IOException {
        endBlock();
        out.reset();
        items.add("{\"reset\":true}");
        dumper.clear();
        return this;
    }

    /**
     * Writes o, which must make ObjectOutputStream fail part-way: the JDK then writes
     * TC_EXCEPTION and the exception. The stream's handle table is cleared before and after
     * the exception, so the oracle forgets instances before and after rendering it.
     */
    StreamWriter aborting(Object o) throws IOException {
        endBlock();
        try {
            out.writeObject(o);
        } catch (ObjectStreamException e) {
            dumper.clear();
            items.add("{\"aborted\":" + dumper.value(e) + "}");
            dumper.clear();
            return this;
        }
        throw new IllegalStateException("writing " + o.getClass().getName() + " did not fail");
    }

    /** The stream bytes and the oracle JSON. */
    byte[] streamBytes() throws IOException {
        endBlock();
        out.flush();
        return bytes.toByteArray();
    }

    String oracle() {
        endBlock();
        return Json.array(items);
    }

    private void endBlock() {
        if (pendingBlock.size() > 0) {
            StringBuilder sb = new StringBuilder();
            Json.block(sb, pendingBlock.toByteArray());
            items.add(sb.toString());
            pendingBlock.reset();
        }
    }
}
