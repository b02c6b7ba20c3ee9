package nectr.peer.model;

/**
 * An enum whose constants (except one) have constant-specific bodies, so their runtime
 * classes are the anonymous subclasses Operation$1, Operation$2.
 */
public enum Operation {
    PLUS {
        @Override
        public int apply(int a, int b) {
            return a + b;
        }
    },
    MINUS {
        @Override
        public int apply(int a, int b) {
            return a - b;
        }
    },
    NOOP;

    public int apply(int a, int b) {
        return a;
    }
}
