package nectr.peer.model;

import java.io.Serializable;

/** SUID test: a package-private class with a package-private constructor. */
class SuidPackagePrivate implements Serializable, Runnable {
    int x;

    @Override
    public void run() {
    }
}
