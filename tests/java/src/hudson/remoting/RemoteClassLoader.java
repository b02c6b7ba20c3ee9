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

    /** RemoteClassLoader$ClassFile (SUID 1): a class image and the export id of its loader (fetch2). */
    public static class ClassFile implements Serializable {
        private static final long serialVersionUID = 1L;
        final int classLoader;
        final byte[] classImage;

        public ClassFile(int classLoader, byte[] classImage) {
            this.classLoader = classLoader;
            this.classImage = classImage;
        }
    }

    /** RemoteClassLoader$ResourceFile (SUID 1; image; the URL is transient). */
    public static class ResourceFile implements Serializable {
        private static final long serialVersionUID = 1L;
        final ResourceImageRef image;

        public ResourceFile(ResourceImageRef image) {
            this.image = image;
        }
    }

    /** RemoteClassLoader$ClassFile2 (SUID 1; classLoader, referer): what fetch3 answers, by class name. */
    public static class ClassFile2 extends ResourceFile {
        private static final long serialVersionUID = 1L;
        final int classLoader;
        final ClassFile2 referer;

        public ClassFile2(int classLoader, ResourceImageRef image, ClassFile2 referer) {
            super(image);
            this.classLoader = classLoader;
            this.referer = referer;
        }
    }
}
