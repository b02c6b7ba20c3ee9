package hudson.remoting;

import java.io.Serializable;

/** Holder for the nested types of remoting's RemoteClassLoader used on the wire. */
public final class RemoteClassLoader {
    private RemoteClassLoader() {
    }

    /** The exported class-loader interface (only its name matters on the wire). */
    public interface IClassLoader {
        byte[] fetch(String className) throws ClassNotFoundException;
        String getName() throws java.io.IOException;
    }

    /** RemoteClassLoader$RemoteIClassLoader (SUID 1; oid): what agents put in classLoaderProxy. */
    public static final class RemoteIClassLoader implements IClassLoader, Serializable {
        private static final long serialVersionUID = 1L;
        private final int oid;

        public RemoteIClassLoader(int oid) { this.oid = oid; }
        public int getOid() { return oid; }
        @Override public byte[] fetch(String className) throws ClassNotFoundException { throw new ClassNotFoundException(className); }
        @Override public String getName() { return "RemoteIClassLoader(" + oid + ")"; }
    }
}
