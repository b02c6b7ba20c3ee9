package nectr.peer.model;

/** Custom exception with extra fields. */
public class AppException extends Exception {
    private static final long serialVersionUID = 26L;

    public int code;
    public String[] details;

    public AppException(String message, Throwable cause, int code, String... details) {
        super(message, cause);
        this.code = code;
        this.details = details;
    }
}
