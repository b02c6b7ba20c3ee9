package nectr.sim;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.ObjectStreamClass;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Nested user streams (UserRequest.request, response bytes) with MultiClassLoaderSerializer annotations. */
final class Nested {
    static final int TAG_SYSTEMCLASSLOADER = -3;
    static final int TAG_EXPORTED_CLASSLOADER = -2;
    static final int TAG_LOCAL_CLASSLOADER = -1;
    /**
     * Accept class loaders the agent exports ({@code -2}), as a Java agent's answers carry for
     * its own classes (the JVM helper scenarios); otherwise they are a check failure.
     */
    static volatile boolean acceptAgentLoaders;

    private Nested() {
    }

    /** Plain stream: one object, empty annotations. */
    static byte[] plain(Object o) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (ObjectOutputStream oos = new ObjectOutputStream(bos)) {
            oos.writeObject(o);
        }
        return bos.toByteArray();
    }

    /**
     * Stream as the controller writes it when the agent advertised MULTI_CLASSLOADER: bootstrap
     * classes get -3; the first class of a (non-bootstrap) loader gets -2 + the export oid of
     * that loader; later classes of the same loader get its index in this stream. The
     * simulator's single class loader plays one loader per Jenkins component
     * ({@link SimChannel#loaderOid}).
     */
    static byte[] annotated(Object o) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (ObjectOutputStream oos = new AnnotatingOut(bos)) {
            oos.writeObject(o);
        }
        return bos.toByteArray();
    }

    static final class AnnotatingOut extends ObjectOutputStream {
        /** Index in this stream of each (played) loader, by its export oid. */
        private final Map<Integer, Integer> loaders = new java.util.HashMap<>();

        AnnotatingOut(java.io.OutputStream out) throws IOException {
            super(out);
        }

        @Override
        protected void annotateClass(Class<?> c) throws IOException {
            ClassLoader cl = c.getClassLoader();
            if (cl == null) {
                writeInt(TAG_SYSTEMCLASSLOADER);
                return;
            }
            int loaderOid = SimChannel.loaderOid(c);
            Integer idx = loaders.get(loaderOid);
            if (idx == null) {
                loaders.put(loaderOid, loaders.size());
                writeInt(TAG_EXPORTED_CLASSLOADER);
                writeInt(loaderOid);
            } else {
                writeInt(idx);
            }
        }

        @Override
        protected void annotateProxyClass(Class<?> c) throws IOException {
            annotateClass(c);
        }
    }

    /**
     * Reads one object from a nested stream written by the agent. When {@code multi}, the
     * class-loader annotation of every descriptor is read and checked (problems are collected in
     * {@code problems}, notes in {@code notes}); otherwise annotations are skipped by the JDK.
     */
    static Object read(byte[] bytes, boolean multi, int ourLoaderOid, List<String> problems, List<String> notes)
            throws IOException, ClassNotFoundException {
        try (ObjectInputStream in = new CheckingIn(new ByteArrayInputStream(bytes), multi, ourLoaderOid, problems, notes)) {
            return in.readObject();
        }
    }

    static final class CheckingIn extends ObjectInputStream {
        private final boolean multi;
        private final int ourLoaderOid;
        private final List<String> problems;
        private final List<String> notes;
        private int introduced;

        CheckingIn(InputStream in, boolean multi, int ourLoaderOid, List<String> problems, List<String> notes)
                throws IOException {
            super(in);
            this.multi = multi;
            this.ourLoaderOid = ourLoaderOid;
            this.problems = problems != null ? problems : new ArrayList<>();
            this.notes = notes != null ? notes : new ArrayList<>();
        }

        private void checkTag(String name) throws IOException {
            if (!multi) return;
            boolean jdk = name.startsWith("java.") || name.startsWith("[") && !name.contains("L")
                    || name.startsWith("[Ljava.") || name.startsWith("[[");
            int tag;
            try {
                tag = readInt();
            } catch (EOFException e) {
                // MultiClassLoaderSerializer.Input.readInt fails the same way in a real controller.
                throw new java.io.StreamCorruptedException("missing class-loader annotation on " + name
                        + " (the agent advertised MULTI_CLASSLOADER)");
            }
            if (tag == TAG_SYSTEMCLASSLOADER) {
                if (!jdk) notes.add("class " + name + " annotated -3 (system) instead of -1 " + ourLoaderOid);
            } else if (tag == TAG_LOCAL_CLASSLOADER) {
                int oid = readInt();
                introduced++;
                if (!SimChannel.isLoaderOid(oid)) {
                    // a real controller fails: "Invalid object ID" in its export table
                    throw new java.io.InvalidObjectException("class " + name + " annotated -1 " + oid
                            + " but the controller's class-loader oids are " + SimChannel.LOADER_OIDS);
                }
            } else if (tag == TAG_EXPORTED_CLASSLOADER) {
                int oid = readInt();
                introduced++;
                String what = "class " + name + " annotated -2 " + oid + " (agent-exported class loader; the controller would call IClassLoader.getName on it)";
                if (acceptAgentLoaders) notes.add(what);
                else problems.add(what);
            } else if (tag >= 0) {
                if (tag >= introduced) {
                    throw new java.io.StreamCorruptedException("class " + name + " annotated with class-loader index " + tag
                            + " but only " + introduced + " were introduced");
                }
            } else {
                throw new java.io.StreamCorruptedException("class " + name + " has unknown class-loader tag " + tag);
            }
        }

        @Override
        protected Class<?> resolveClass(ObjectStreamClass desc) throws IOException, ClassNotFoundException {
            checkTag(desc.getName());
            Class<?> c = super.resolveClass(desc);
            if (!ClassFilter.accepted(c)) {
                notes.add("class " + c.getName() + " is not in the simulator's list of classes a Jenkins controller"
                        + " accepts (JEP-200 filter); a real controller may reject this answer");
            }
            return c;
        }

        @Override
        protected Class<?> resolveProxyClass(String[] interfaces) throws IOException, ClassNotFoundException {
            checkTag("proxy" + java.util.Arrays.toString(interfaces));
            return super.resolveProxyClass(interfaces);
        }
    }
}
