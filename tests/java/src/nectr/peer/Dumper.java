package nectr.peer;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.io.ObjectStreamClass;
import java.io.ObjectStreamField;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Date;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.Vector;

/**
 * Renders Java values in the oracle JSON format (see tests/java/README.md).
 *
 * One Dumper is used per stream: it numbers object, array and proxy instances in pre-order
 * and renders later occurrences of the same instance as {"ref":id}. {@link #clear()} forgets
 * the instances (after a reset or an aborted write) without restarting the counter.
 *
 * Model classes with a private writeObject method declare, at the same hierarchy level:
 * <ul>
 * <li>optionally {@code private void writeData(ObjectOutput)}: writes what writeObject writes
 * after the default fields (called here with a {@link RecordingOutput});</li>
 * <li>optionally {@code private Map<String, Object> streamFields()}: the field values written
 * by writeFields (putFields) when they differ from the Java fields; fields missing from the map
 * were not written (an empty map: no default fields at all, as in NoDefaultFields).</li>
 * </ul>
 */
final class Dumper {
    /** JDK classes whose class data is rendered as map entries. */
    private static final Set<String> ENTRY_CLASSES = Set.of("java.util.HashMap", "java.util.TreeMap");
    /** JDK classes whose class data is rendered as collection elements. */
    private static final Set<String> ELEMENT_CLASSES =
            Set.of("java.util.ArrayList", "java.util.HashSet", "java.util.LinkedList");
    /** JDK classes with a writeObject method that writes nothing after the default fields. */
    private static final Set<Class<?>> NO_DATA_CLASSES = Set.of(Throwable.class, Vector.class);

    private final IdentityHashMap<Object, Integer> ids = new IdentityHashMap<>();
    private int nextId = 1;
    private final Map<Class<?>, Field[]> fieldCache = new HashMap<>();

    /** Forgets all instances seen so far; ids keep counting up. */
    void clear() {
        ids.clear();
    }

    /** The JSON value for o. */
    String value(Object o) {
        StringBuilder sb = new StringBuilder();
        value(sb, o);
        return sb.toString();
    }

    /**
     * The JSON value for a top-level object written with writeUnshared: a fresh instance
     * (new id) that later occurrences do not refer to.
     */
    String unshared(Object o) {
        StringBuilder sb = new StringBuilder();
        if (o == null || o instanceof String || o instanceof Enum || o instanceof Class) {
            value(sb, o);
        } else {
            instance(sb, o, false);
        }
        return sb.toString();
    }

    /** Renders recorded items (blocks and objects) as a JSON array. */
    private void items(StringBuilder sb, List<Object> items) {
        sb.append('[');
        for (int i = 0; i < items.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            if (items.get(i) instanceof RecordingOutput.Block block) {
                Json.block(sb, block.bytes());
            } else {
                value(sb, items.get(i));
            }
        }
        sb.append(']');
    }

    private void value(StringBuilder sb, Object o) {
        if (o == null) {
            sb.append("null");
        } else if (o instanceof String s) {
            Json.stringValue(sb, s);
        } else if (o instanceof Enum<?> e) {
            sb.append("{\"enum\":");
            Json.string(sb, e.getDeclaringClass().getName());
            sb.append(",\"name\":");
            Json.string(sb, e.name());
            sb.append('}');
        } else if (o instanceof Class<?> c) {
            if (Proxy.isProxyClass(c)) {
                sb.append("{\"class_of_proxy\":");
                interfaceNames(sb, c);
                sb.append('}');
            } else {
                sb.append("{\"class_of\":");
                Json.string(sb, c.getName());
                sb.append('}');
            }
        } else {
            Integer id = ids.get(o);
            if (id != null) {
                sb.append("{\"ref\":").append(id).append('}');
            } else {
                instance(sb, o, true);
            }
        }
    }

    private static void interfaceNames(StringBuilder sb, Class<?> proxyClass) {
        sb.append('[');
        Class<?>[] interfaces = proxyClass.getInterfaces();
        for (int i = 0; i < interfaces.length; i++) {
            if (i > 0) {
                sb.append(',');
            }
            Json.string(sb, interfaces[i].getName());
        }
        sb.append(']');
    }

    /** Renders an array, proxy or object instance under a new id (pre-order). */
    private void instance(StringBuilder sb, Object o, boolean remember) {
        int id = nextId++;
        if (remember) {
            ids.put(o, id);
        }
        sb.append("{\"id\":").append(id).append(',');
        Class<?> c = o.getClass();
        if (c.isArray()) {
            array(sb, o);
        } else if (Proxy.isProxyClass(c)) {
            sb.append("\"proxy\":");
            interfaceNames(sb, c);
            sb.append(",\"h\":");
            value(sb, Proxy.getInvocationHandler(o));
        } else if (o instanceof Externalizable ext) {
            sb.append("\"class\":");
            Json.string(sb, c.getName());
            sb.append(",\"external\":");
            RecordingOutput recorder = new RecordingOutput();
            try {
                ext.writeExternal(recorder);
            } catch (IOException e) {
                throw new IllegalStateException("writeExternal of " + c.getName() + " failed", e);
            }
            items(sb, recorder.items());
        } else {
            sb.append("\"class\":");
            Json.string(sb, c.getName());
            sb.append(",\"levels\":[");
            List<Class<?>> levels = serializableLevels(c);
            for (int i = 0; i < levels.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                level(sb, o, levels.get(i));
            }
            sb.append(']');
        }
        sb.append('}');
    }

    /** The serializable classes of c's hierarchy, topmost first (the order of class data). */
    private static List<Class<?>> serializableLevels(Class<?> c) {
        List<Class<?>> levels = new ArrayList<>();
        for (Class<?> k = c; k != null && ObjectStreamClass.lookup(k) != null; k = k.getSuperclass()) {
            levels.add(0, k);
        }
        return levels;
    }

    private void array(StringBuilder sb, Object a) {
        sb.append("\"array\":");
        Json.string(sb, a.getClass().getName());
        if (a instanceof byte[] bytes) {
            sb.append(",\"hex\":\"");
            Json.hex(sb, bytes);
            sb.append('"');
            return;
        }
        sb.append(",\"items\":[");
        if (a instanceof Object[] objects) {
            for (int i = 0; i < objects.length; i++) {
                separate(sb, i);
                value(sb, objects[i]);
            }
        } else if (a instanceof int[] ints) {
            for (int i = 0; i < ints.length; i++) {
                separate(sb, i).append(ints[i]);
            }
        } else if (a instanceof long[] longs) {
            for (int i = 0; i < longs.length; i++) {
                separate(sb, i).append(longs[i]);
            }
        } else if (a instanceof short[] shorts) {
            for (int i = 0; i < shorts.length; i++) {
                separate(sb, i).append(shorts[i]);
            }
        } else if (a instanceof char[] chars) {
            for (int i = 0; i < chars.length; i++) {
                separate(sb, i).append((int) chars[i]);
            }
        } else if (a instanceof boolean[] booleans) {
            for (int i = 0; i < booleans.length; i++) {
                separate(sb, i).append(booleans[i]);
            }
        } else if (a instanceof float[] floats) {
            for (int i = 0; i < floats.length; i++) {
                primitive(separate(sb, i), floats[i]);
            }
        } else if (a instanceof double[] doubles) {
            for (int i = 0; i < doubles.length; i++) {
                primitive(separate(sb, i), doubles[i]);
            }
        }
        sb.append(']');
    }

    private static StringBuilder separate(StringBuilder sb, int index) {
        return index > 0 ? sb.append(',') : sb;
    }

    /**
     * Appends a primitive field or element value given boxed: numbers and booleans as JSON
     * literals, char as its code unit, float and double as "f:"/"d:" bit patterns.
     */
    private static void primitive(StringBuilder sb, Object boxed) {
        if (boxed instanceof Float f) {
            sb.append("\"f:");
            Json.fixedHex(sb, Float.floatToIntBits(f), 8);
            sb.append('"');
        } else if (boxed instanceof Double d) {
            sb.append("\"d:");
            Json.fixedHex(sb, Double.doubleToLongBits(d), 16);
            sb.append('"');
        } else if (boxed instanceof Character ch) {
            sb.append((int) ch);
        } else {
            sb.append(boxed);
        }
    }

    /** Renders the class data of o for hierarchy level k. */
    private void level(StringBuilder sb, Object o, Class<?> k) {
        sb.append("{\"class\":");
        Json.string(sb, k.getName());
        if (ENTRY_CLASSES.contains(k.getName())) {
            sb.append(",\"entries\":[");
            int i = 0;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                separate(sb, i++).append('[');
                value(sb, e.getKey());
                sb.append(',');
                value(sb, e.getValue());
                sb.append(']');
            }
            sb.append("]}");
            return;
        }
        if (ELEMENT_CLASSES.contains(k.getName())) {
            sb.append(",\"elements\":[");
            int i = 0;
            for (Object element : (Collection<?>) o) {
                separate(sb, i++);
                value(sb, element);
            }
            sb.append("]}");
            return;
        }
        sb.append(",\"fields\":{");
        Map<String, Object> streamFields = invokeDeclared(k, "streamFields", o);
        ObjectStreamField[] fields = ObjectStreamClass.lookup(k).getFields();
        int written = 0;
        for (ObjectStreamField f : fields) {
            if (streamFields != null && !streamFields.containsKey(f.getName())) {
                continue;
            }
            separate(sb, written++);
            Json.string(sb, f.getName());
            sb.append(':');
            Object v = streamFields != null ? streamFields.get(f.getName()) : fieldValue(k, f.getName(), o);
            if (f.isPrimitive()) {
                primitive(sb, v);
            } else {
                value(sb, v);
            }
        }
        sb.append('}');
        if (hasWriteObject(k)) {
            sb.append(",\"data\":");
            items(sb, customData(k, o));
        }
        sb.append('}');
    }

    /** What the writeObject method of level k wrote after the default fields. */
    private static List<Object> customData(Class<?> k, Object o) {
        RecordingOutput recorder = new RecordingOutput();
        try {
            if (k == Date.class) {
                recorder.writeLong(((Date) o).getTime());
            } else if (declaredMethod(k, "writeData", ObjectOutput.class) != null) {
                invoke(declaredMethod(k, "writeData", ObjectOutput.class), o, recorder);
            } else if (!NO_DATA_CLASSES.contains(k) && !k.getName().startsWith("nectr.peer.model.")) {
                throw new IllegalStateException("no oracle rendering for class with writeObject: " + k.getName());
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return recorder.items();
    }

    private static boolean hasWriteObject(Class<?> k) {
        Method m = declaredMethod(k, "writeObject", ObjectOutputStream.class);
        return m != null && Modifier.isPrivate(m.getModifiers()) && !Modifier.isStatic(m.getModifiers());
    }

    private Object fieldValue(Class<?> k, String name, Object o) {
        for (Field f : fieldCache.computeIfAbsent(k, Dumper::accessibleFields)) {
            if (f.getName().equals(name)) {
                try {
                    return f.get(o);
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        throw new IllegalStateException("no field " + name + " in " + k.getName());
    }

    private static Field[] accessibleFields(Class<?> k) {
        Field[] fields = k.getDeclaredFields();
        for (Field f : fields) {
            if (!Modifier.isStatic(f.getModifiers())) {
                f.setAccessible(true);
            }
        }
        return fields;
    }

    private static Method declaredMethod(Class<?> k, String name, Class<?>... parameterTypes) {
        try {
            return k.getDeclaredMethod(name, parameterTypes);
        } catch (NoSuchMethodException e) {
            return null;
        }
    }

    /** Calls the no-arg method name declared by k on o, or returns null if k has none. */
    @SuppressWarnings("unchecked")
    private static <T> T invokeDeclared(Class<?> k, String name, Object o) {
        Method m = k.getName().startsWith("nectr.peer.model.") ? declaredMethod(k, name) : null;
        return m == null ? null : (T) invoke(m, o);
    }

    private static Object invoke(Method m, Object target, Object... args) {
        m.setAccessible(true);
        try {
            return m.invoke(target, args);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        } catch (InvocationTargetException e) {
            throw new IllegalStateException(m + " failed", e.getCause());
        }
    }
}
