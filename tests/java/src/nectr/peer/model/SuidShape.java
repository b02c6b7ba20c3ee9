package nectr.peer.model;

import java.io.Serializable;

/** SUID test: an abstract class with abstract and concrete methods and a protected constructor. */
public abstract class SuidShape implements Serializable, Cloneable {
    protected double scale = 1;

    protected SuidShape() {
    }

    public abstract double area();

    protected abstract String kind();

    public final double scaledArea() {
        return area() * scale;
    }
}
