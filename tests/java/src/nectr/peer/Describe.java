package nectr.peer;

import java.io.File;
import java.io.ObjectOutputStream;
import java.io.ObjectStreamClass;
import java.io.ObjectStreamField;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code describe JARDIR CLASS...}: how the JDK serializes each class, loaded from the jars
 * under JARDIR (searched recursively) in a loader of its own, so the peer's stub classes never
 * stand in for the real ones. One JSON object per line:
 * {@code {"name":…,"suid":…,"fields":[[name,signature],…],"writeObject":bool,"super":…}}, or
 * {@code {"name":…,"error":…}} when the class is missing or not serializable.
 */
final class Describe {
    private Describe() {}

    static void run(String jarDir, List<String> names) throws Exception {
        List<URL> urls = new ArrayList<>();
        collect(new File(jarDir), urls);
        if (urls.isEmpty()) {
            throw new IllegalArgumentException("no jars under " + jarDir);
        }
        try (URLClassLoader loader = new URLClassLoader(urls.toArray(new URL[0]),
                ClassLoader.getPlatformClassLoader())) {
            for (String name : names) {
                System.out.println(describe(loader, name));
            }
        }
    }

    private static void collect(File dir, List<URL> out) throws Exception {
        File[] kids = dir.listFiles();
        if (kids == null) {
            return;
        }
        java.util.Arrays.sort(kids);
        for (File f : kids) {
            if (f.isDirectory()) {
                collect(f, out);
            } else if (f.getName().endsWith(".jar")) {
                out.add(f.toURI().toURL());
            }
        }
    }

    private static String describe(ClassLoader loader, String name) {
        StringBuilder sb = new StringBuilder("{\"name\":").append(Json.string(name));
        try {
            Class<?> c = Class.forName(name, false, loader);
            ObjectStreamClass d = ObjectStreamClass.lookup(c);
            if (d == null) {
                return sb.append(",\"error\":\"not serializable\"}").toString();
            }
            sb.append(",\"suid\":").append(d.getSerialVersionUID());
            sb.append(",\"fields\":[");
            ObjectStreamField[] fields = d.getFields();
            for (int i = 0; i < fields.length; i++) {
                ObjectStreamField f = fields[i];
                String sig = f.isPrimitive() ? String.valueOf(f.getTypeCode()) : f.getTypeString();
                sb.append(i > 0 ? "," : "").append('[').append(Json.string(f.getName()))
                        .append(',').append(Json.string(sig)).append(']');
            }
            sb.append("],\"writeObject\":").append(hasWriteObject(c));
            sb.append(",\"record\":").append(c.isRecord());
            sb.append(",\"enum\":").append(c.isEnum());
            Class<?> s = c.getSuperclass();
            String sup = null;
            if (s != null && ObjectStreamClass.lookup(s) != null && !c.isEnum()) {
                sup = s.getName();
            }
            sb.append(",\"super\":").append(sup == null ? "null" : Json.string(sup));
            return sb.append('}').toString();
        } catch (Throwable t) {
            return sb.append(",\"error\":").append(Json.string(t.toString())).append('}').toString();
        }
    }

    private static boolean hasWriteObject(Class<?> c) {
        try {
            Method m = c.getDeclaredMethod("writeObject", ObjectOutputStream.class);
            return Modifier.isPrivate(m.getModifiers()) && !Modifier.isStatic(m.getModifiers());
        } catch (NoSuchMethodException e) {
            return false;
        }
    }
}
