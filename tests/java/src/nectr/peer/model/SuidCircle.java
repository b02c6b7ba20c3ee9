package nectr.peer.model;

/** SUID test: a final subclass overriding abstract methods, with private and package-private constructors. */
public final class SuidCircle extends SuidShape {
    private final double radius;

    SuidCircle() {
        this(1);
    }

    private SuidCircle(double radius) {
        this.radius = radius;
    }

    @Override
    public double area() {
        return Math.PI * radius * radius;
    }

    @Override
    protected String kind() {
        return "circle";
    }
}
