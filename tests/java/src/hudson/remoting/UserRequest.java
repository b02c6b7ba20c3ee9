package hudson.remoting;

import java.io.Serializable;

/**
 * Minimal wire twin of remoting's UserRequest (final, SUID 1). Fields: classLoaderProxy
 * (an IClassLoader proxy), request (nested serialization stream of the callable), toString.
 */
public final class UserRequest<RSP, EXC extends Throwable> extends Request<UserRequest.ResponseToUserRequest<RSP, EXC>, EXC> {
    private static final long serialVersionUID = 1L;

    private final byte[] request;
    private final RemoteClassLoader.IClassLoader classLoaderProxy;
    private final String toString;

    public UserRequest(int id, RemoteClassLoader.IClassLoader classLoaderProxy, byte[] request, String toString) {
        super();
        this.id = id;
        this.classLoaderProxy = classLoaderProxy;
        this.request = request;
        this.toString = toString;
    }

    public byte[] getRequestBytes() { return request; }
    public Object getClassLoaderProxy() { return classLoaderProxy; }
    public String getToString() { return toString; }

    public interface ResponseToUserRequest<RSP, EXC extends Throwable> extends Serializable {
    }

    /** UserRequest$NormalResponse (SUID 1; response = nested stream of the return value). */
    public static final class NormalResponse<RSP, EXC extends Throwable> implements ResponseToUserRequest<RSP, EXC> {
        private static final long serialVersionUID = 1L;
        private final byte[] response;

        public NormalResponse(byte[] response) { this.response = response; }
        public byte[] getResponse() { return response; }
    }

    /** UserRequest$ExceptionResponse (SUID 1; proxyResponse, rawResponse). */
    public static final class ExceptionResponse<RSP, EXC extends Throwable> implements ResponseToUserRequest<RSP, EXC> {
        private static final long serialVersionUID = 1L;
        private final byte[] rawResponse;
        private final byte[] proxyResponse;

        public ExceptionResponse(byte[] rawResponse, byte[] proxyResponse) {
            this.rawResponse = rawResponse;
            this.proxyResponse = proxyResponse;
        }
        public byte[] getRawResponse() { return rawResponse; }
        public byte[] getProxyResponse() { return proxyResponse; }
    }
}
