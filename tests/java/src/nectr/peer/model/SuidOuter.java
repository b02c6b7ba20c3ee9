package nectr.peer.model;

import java.io.Serializable;
import java.util.function.Supplier;

/**
 * SUID test: nested classes of every kind (the class modifiers used for the hash come from
 * the InnerClasses attribute), an anonymous class and lambdas.
 */
public class SuidOuter implements Serializable {
    private int secret = 1;

    /** A static nested class. */
    public static class StaticNested implements Serializable {
        public int value;
    }

    /** An inner class: has the synthetic field this$0. */
    public class Inner implements Serializable {
        public int peek() {
            return secret;
        }
    }

    /** A private static nested class. */
    private static class PrivateNested implements Serializable {
        private static final long CONSTANT = 5;
    }

    /** A protected abstract static nested class. */
    protected abstract static class ProtectedNested implements Serializable {
        abstract void run();
    }

    /** A package-private final nested class. */
    static final class PackageNested implements Serializable {
    }

    /** A serializable anonymous class (SuidOuter$1) capturing this. */
    public Serializable anonymous() {
        return new Serializable() {
            @Override
            public String toString() {
                return "anon" + secret;
            }
        };
    }

    /** Lambdas compile to private synthetic methods of this class. */
    public Supplier<String> lambda(String prefix) {
        Supplier<Integer> s = () -> secret;
        return () -> prefix + s.get();
    }

    /** Returns the private nested class so that it is used. */
    static Object privateNested() {
        return new PrivateNested();
    }
}
