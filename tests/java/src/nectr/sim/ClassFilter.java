package nectr.sim;

import java.util.Set;

/**
 * An approximation of Jenkins' JEP-200 ClassFilterImpl for classes in the agent's answers:
 * arrays, Throwables, enums, Jenkins/remoting/plugin classes, and the JDK classes the
 * references list as written by agents (agent-callables §1.10, remoting-protocol §8.5). It only
 * produces notes: the real whitelist is larger.
 */
final class ClassFilter {
    private static final Set<String> JDK = Set.of(
            "java.lang.String", "java.lang.Boolean", "java.lang.Integer", "java.lang.Long", "java.lang.Number",
            "java.lang.Short", "java.lang.Byte", "java.lang.Character", "java.lang.Double", "java.lang.Float",
            "java.lang.Enum", "java.lang.StackTraceElement", "java.lang.reflect.Proxy",
            "java.lang.String$CaseInsensitiveComparator",
            "java.util.ArrayList", "java.util.LinkedList", "java.util.HashMap", "java.util.LinkedHashMap",
            "java.util.TreeMap", "java.util.HashSet", "java.util.LinkedHashSet", "java.util.TreeSet",
            "java.util.Collections$EmptyList", "java.util.Collections$EmptyMap", "java.util.Collections$EmptySet",
            "java.util.Collections$SingletonList", "java.util.Collections$SingletonMap",
            "java.util.Collections$SingletonSet", "java.util.Collections$UnmodifiableList",
            "java.util.Collections$UnmodifiableRandomAccessList", "java.util.Collections$UnmodifiableCollection",
            "java.util.Collections$UnmodifiableMap", "java.util.Collections$UnmodifiableSet",
            "java.util.Arrays$ArrayList", "java.util.Date", "java.io.File",
            "java.util.logging.Level", "java.util.logging.LogRecord");

    private ClassFilter() {
    }

    static boolean accepted(Class<?> c) {
        if (c.isArray() || c.isPrimitive() || c.isEnum() || Throwable.class.isAssignableFrom(c)) return true;
        if (java.lang.reflect.Proxy.isProxyClass(c)) return true; // remoting proxies (exported objects)
        if (c.getSuperclass() != null && c.getSuperclass().isEnum()) return true;
        String n = c.getName();
        if (n.startsWith("hudson.") || n.startsWith("jenkins.") || n.startsWith("org.jvnet.hudson.")
                || n.startsWith("org.jenkinsci.") || n.startsWith("nectr.sim.")) return true;
        return JDK.contains(n);
    }
}
