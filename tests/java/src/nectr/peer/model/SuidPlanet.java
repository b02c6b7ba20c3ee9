package nectr.peer.model;

/** SUID test: an enum with fields, a constructor, methods and a constant-specific body. */
public enum SuidPlanet {
    MERCURY(3.303e+23),
    EARTH(5.976e+24) {
        @Override
        public String label() {
            return "home";
        }
    };

    private final double mass;

    SuidPlanet(double mass) {
        this.mass = mass;
    }

    public double mass() {
        return mass;
    }

    public String label() {
        return name().toLowerCase();
    }
}
