package hudson.remoting;

import java.io.Serializable;

/** Minimal wire twin of remoting's Command (SUID 1, field createdAt). */
public abstract class Command implements Serializable {
    private static final long serialVersionUID = 1L;

    /** null, or a {@link Source} recording where the command was created (as Jenkins does). */
    final Exception createdAt;

    protected Command() {
        this(true);
    }

    protected Command(boolean recordCreatedAt) {
        this.createdAt = recordCreatedAt ? new Source() : null;
    }

    protected Command(Throwable cause) {
        this.createdAt = new Source(cause);
    }

    public Exception getCreatedAt() {
        return createdAt;
    }

    /** Inner (non-static) class: serialized with the synthetic this$0 back to the command. */
    public final class Source extends Exception {
        private static final long serialVersionUID = 1L;

        public Source() {
        }

        public Source(Throwable cause) {
            super(cause);
        }

        @Override
        public String toString() {
            return "Command " + Command.this.getClass().getName() + " created at";
        }
    }
}
