package nectr.peer;

import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.OutputStream;

/**
 * An ObjectOutputStream that writes class annotations (which a plain ObjectInputStream
 * skips): after every class descriptor an int, a String object and some raw bytes; after
 * every proxy class descriptor the interface count and a String object.
 */
final class AnnotatingOutputStream extends ObjectOutputStream {
    private final String marker;

    /** marker is the String object written into each annotation (the same instance each time). */
    AnnotatingOutputStream(OutputStream out, String marker) throws IOException {
        super(out);
        this.marker = marker;
    }

    @Override
    protected void annotateClass(Class<?> cl) throws IOException {
        writeInt(cl.getName().length());
        writeObject(marker);
        write(new byte[] {1, 2, 3});
    }

    @Override
    protected void annotateProxyClass(Class<?> cl) throws IOException {
        writeShort(cl.getInterfaces().length);
        writeObject(marker);
    }
}
