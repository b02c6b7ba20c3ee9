package hudson.remoting;

import java.io.IOException;

/** remoting's ProxyException: no own fields, computed SUID per the references. */
public class ProxyException extends IOException {
    private static final long serialVersionUID = 1332793125360580541L;

    public ProxyException(String message) {
        super(message);
    }
}
