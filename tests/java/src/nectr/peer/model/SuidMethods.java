package nectr.peer.model;

import java.io.Serializable;

/** SUID test: overloaded, synchronized, native, final, static and varargs methods. */
public class SuidMethods implements Serializable {
    public int value;

    public int compute() {
        return value;
    }

    public int compute(int x) {
        return value + x;
    }

    public long compute(long x, int... more) {
        return value + x + more.length;
    }

    protected synchronized void lock() {
    }

    public native int nativeCall(byte[] data);

    public final String finalMethod(String s, Object o) {
        return s + o;
    }

    static double helper(double[][] grid) {
        return grid.length;
    }

    public double precise(float f) {
        return f * 2.0;
    }

    private void hidden() {
    }

    public static synchronized void staticLock(Object... args) {
    }
}
