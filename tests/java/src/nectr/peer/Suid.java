package nectr.peer;

import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectStreamClass;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The `suid` command: writes class files and the JDK's computed default serialVersionUID
 * of each (ignoring any declared serialVersionUID), and cross-checks the model classes
 * without a declared serialVersionUID against the serialver tool.
 */
final class Suid {
    /** Classes whose default SUID is exported, by binary name. */
    private static final String[] CLASSES = {
        // model classes used by the corpus (they declare a serialVersionUID, which is ignored here)
        "nectr.peer.model.Point",
        "nectr.peer.model.AllPrims",
        "nectr.peer.model.Node",
        "nectr.peer.model.Color",
        "nectr.peer.model.Holder",
        "nectr.peer.model.Base",
        "nectr.peer.model.Derived",
        "nectr.peer.model.Custom",
        "nectr.peer.model.Operation",
        "nectr.peer.model.Operation$1",
        "nectr.peer.model.Level3",
        "nectr.peer.model.OnPlain",
        "nectr.peer.model.WithTransient",
        "nectr.peer.model.Persistent",
        "nectr.peer.model.ExtRecord",
        "nectr.peer.model.Handler",
        "nectr.peer.model.Span",
        // model classes made for this test, without a declared serialVersionUID
        "nectr.peer.model.SuidPlain",
        "nectr.peer.model.SuidMarker",
        "nectr.peer.model.SuidService",
        "nectr.peer.model.SuidShape",
        "nectr.peer.model.SuidCircle",
        "nectr.peer.model.SuidPlanet",
        "nectr.peer.model.SuidPlanet$1",
        "nectr.peer.model.SuidOuter",
        "nectr.peer.model.SuidOuter$StaticNested",
        "nectr.peer.model.SuidOuter$Inner",
        "nectr.peer.model.SuidOuter$PrivateNested",
        "nectr.peer.model.SuidOuter$ProtectedNested",
        "nectr.peer.model.SuidOuter$PackageNested",
        "nectr.peer.model.SuidOuter$1",
        "nectr.peer.model.SuidStaticInit",
        "nectr.peer.model.SuidConstantsOnly",
        "nectr.peer.model.SuidConstructors",
        "nectr.peer.model.SuidMethods",
        "nectr.peer.model.SuidBridge",
        "nectr.peer.model.SuidFields",
        "nectr.peer.model.SuidRecord",
        "nectr.peer.model.SuidAssert",
        "nectr.peer.model.SuidGeneric",
        "nectr.peer.model.SuidPackagePrivate",
        // JDK classes, read from the runtime image
        "java.lang.String",
        "java.lang.Integer",
        "java.lang.Number",
        "java.lang.Long",
        "java.lang.Boolean",
        "java.lang.Character",
        "java.lang.Enum",
        "java.lang.Throwable",
        "java.lang.Exception",
        "java.lang.RuntimeException",
        "java.lang.StackTraceElement",
        "java.lang.reflect.Proxy",
        "java.math.BigInteger",
        "java.io.File",
        "java.util.ArrayList",
        "java.util.HashMap",
        "java.util.LinkedHashMap",
        "java.util.TreeMap",
        "java.util.LinkedList",
        "java.util.HashSet",
        "java.util.Vector",
        "java.util.Date",
        "java.util.concurrent.TimeUnit",
        "java.util.Collections$EmptyList",
        "java.util.Collections$UnmodifiableList",
        "java.util.Arrays$ArrayList",
        "java.util.AbstractMap$SimpleEntry",
    };

    private Suid() {
    }

    /** Writes DIR/classes/... and DIR/suids.tsv; returns the number of classes. */
    static int write(Path dir) throws Exception {
        Method computeDefaultSUID = ObjectStreamClass.class.getDeclaredMethod("computeDefaultSUID", Class.class);
        computeDefaultSUID.setAccessible(true);
        StringBuilder tsv = new StringBuilder();
        Map<String, Long> crossCheck = new HashMap<>();
        for (String name : CLASSES) {
            Class<?> c = Class.forName(name, false, Suid.class.getClassLoader());
            long suid = (Long) computeDefaultSUID.invoke(null, c);
            if (suid == 0) {
                throw new IllegalStateException(name + " is not serializable");
            }
            String relative = "classes/" + name.replace('.', '/') + ".class";
            Path target = dir.resolve(relative);
            Files.createDirectories(target.getParent());
            try (InputStream in = c.getResourceAsStream("/" + name.replace('.', '/') + ".class")) {
                if (in == null) {
                    throw new IOException("no class file for " + name);
                }
                Files.write(target, in.readAllBytes());
            }
            tsv.append(name).append('\t').append(relative).append('\t').append(suid).append('\n');
            if (name.startsWith("nectr.peer.model.") && !declaresSuid(c) && !c.isEnum()
                    && !(c.getSuperclass() != null && c.getSuperclass().isEnum()) && !c.isRecord()) {
                crossCheck.put(name, suid);
            }
        }
        Files.writeString(dir.resolve("suids.tsv"), tsv, StandardCharsets.UTF_8);
        crossCheckWithSerialver(crossCheck);
        return CLASSES.length;
    }

    private static boolean declaresSuid(Class<?> c) {
        try {
            c.getDeclaredField("serialVersionUID");
            return true;
        } catch (NoSuchFieldException e) {
            return false;
        }
    }

    /**
     * Runs the serialver tool on the given classes and fails unless it prints the same SUIDs.
     * (serialver prints 0 for enums and records, whose stream SUID is 0, so they are not checked.)
     */
    private static void crossCheckWithSerialver(Map<String, Long> expected) throws Exception {
        Path serialver = Path.of(System.getProperty("java.home"), "bin", "serialver");
        List<String> command = new ArrayList<>(List.of(serialver.toString(), "-classpath",
                System.getProperty("java.class.path")));
        command.addAll(expected.keySet());
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("serialver failed: " + output.trim());
        }
        Pattern line = Pattern.compile("(?m)^(\\S+):\\s+(?:private )?static final long serialVersionUID = (-?\\d+)L;");
        Matcher m = line.matcher(output);
        Map<String, Long> actual = new HashMap<>();
        while (m.find()) {
            actual.put(m.group(1), Long.parseLong(m.group(2)));
        }
        if (!actual.equals(expected)) {
            throw new IllegalStateException("serialver disagrees: expected " + expected + ", serialver printed: "
                    + output.trim().replace('\n', ' '));
        }
    }
}
