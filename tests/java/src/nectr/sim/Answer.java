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

    String errorText() {
        if (failure != null) return failure;
        if (error != null) return error.getClass().getName() + ": " + error.getMessage();
        return null;
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
