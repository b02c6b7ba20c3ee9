package nectr.sim;

/** The decoded answer to one UserRequest. */
final class Answer {
    final int id;
    final String callable;
    final boolean ok;
    final Object value;
    final Throwable error;
    /** Set when the answer could not be obtained or decoded at all. */
    final String failure;
    boolean timedOut;

    private Answer(int id, String callable, boolean ok, Object value, Throwable error, String failure) {
        this.id = id;
        this.callable = callable;
        this.ok = ok;
        this.value = value;
        this.error = error;
        this.failure = failure;
    }

    static Answer ok(int id, String callable, Object value) {
        return new Answer(id, callable, true, value, null, null);
    }

    static Answer error(int id, String callable, Throwable t) {
        return new Answer(id, callable, false, null, t, null);
    }

    static Answer failure(int id, String callable, String why) {
        return new Answer(id, callable, false, null, null, why);
    }

    /**
     * "class: message" of the exception, then "; caused by: class: message" for each cause, as
     * the stack trace Jenkins prints in the console shows them.
     */
    String errorText() {
        if (failure != null) return failure;
        if (error == null) return null;
        StringBuilder sb = new StringBuilder(error.getClass().getName() + ": " + error.getMessage());
        java.util.Set<Throwable> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        seen.add(error);
        for (Throwable c = error.getCause(); c != null && seen.add(c); c = c.getCause()) {
            sb.append("; caused by: ").append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        return sb.toString();
    }

    static String render(Object v) {
        if (v == null) return "null";
        if (v instanceof String) return Events.shorten((String) v, 200);
        if (v instanceof java.util.Collection) {
            return v.getClass().getName() + "[" + ((java.util.Collection<?>) v).size() + "]";
        }
        if (v instanceof java.util.Map) return v.getClass().getName() + "{" + ((java.util.Map<?, ?>) v).size() + "}";
        return Events.shorten(String.valueOf(v), 200);
    }

    void emit(String node) {
        if (ok) {
            Events.emit("event", "answer", "node", node, "id", id, "callable", callable, "ok", true, "value", render(value));
        } else {
            Events.emit("event", "answer", "node", node, "id", id, "callable", callable, "ok", false, "error", errorText());
        }
    }
}
