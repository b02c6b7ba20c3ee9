package hudson.remoting;

import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;

/**
 * Wire twin of remoting's RemoteInvocationHandler (SUID 1, has writeObject so flags 0x03).
 * Fields in wire order: autoUnexportByCaller, goingHome, oid, recordCreatedAt, userProxy,
 * userSpace, origin.
 */
public final class RemoteInvocationHandler implements InvocationHandler, Serializable {
    private static final long serialVersionUID = 1L;

    private final int oid;
    private final boolean userProxy;
    private final Throwable origin;
    private final boolean autoUnexportByCaller;
    private final boolean userSpace;
    private final boolean recordCreatedAt;
    private boolean goingHome;

    public RemoteInvocationHandler(int oid, boolean userProxy, boolean autoUnexportByCaller, boolean userSpace,
            boolean recordCreatedAt) {
        this.oid = oid;
        this.userProxy = userProxy;
        this.autoUnexportByCaller = autoUnexportByCaller;
        this.userSpace = userSpace;
        this.recordCreatedAt = recordCreatedAt;
        this.origin = null;
    }

    public int getOid() { return oid; }
    public boolean isGoingHome() { return goingHome; }
    public boolean isUserProxy() { return userProxy; }

    /** Creates a dynamic proxy implementing {@code type} and IReadResolve, as remoting's wrap(). */
    public static <T> T wrap(Class<T> type, int oid, boolean userProxy, boolean autoUnexportByCaller,
            boolean userSpace, boolean recordCreatedAt) {
        return type.cast(Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type, IReadResolve.class},
                new RemoteInvocationHandler(oid, userProxy, autoUnexportByCaller, userSpace, recordCreatedAt)));
    }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        // Jenkins sets goingHome here (false when the exporter sends its own object).
        oos.defaultWriteObject();
    }

    /** RemoteInvocationHandler$RPCRequest (SUID 1): a method call on an exported object. */
    public static class RPCRequest extends Request<Serializable, Throwable> {
        private static final long serialVersionUID = 1L;
        private final int oid;
        private final String methodName;
        private final String[] types;
        private final Object[] arguments;
        private final String declaringClassName;

        public RPCRequest(int oid, String declaringClassName, String methodName, String[] types, Object[] arguments) {
            this(true, oid, declaringClassName, methodName, types, arguments);
        }

        /**
         * {@code recordCreatedAt} is the proxy's flag (createdAt = a Source, or null as for the
         * process proxies an agent exports). The request's own id is set by the caller from the
         * simulator's request counter, as remoting's Request constructor takes the next id.
         */
        public RPCRequest(boolean recordCreatedAt, int oid, String declaringClassName, String methodName, String[] types,
                Object[] arguments) {
            super(recordCreatedAt);
            this.oid = oid;
            this.declaringClassName = declaringClassName;
            this.methodName = methodName;
            this.types = types;
            this.arguments = arguments;
        }

        public int getOid() { return oid; }
        public String getMethodName() { return methodName; }
        public String getDeclaringClassName() { return declaringClassName; }
        public String[] getTypes() { return types; }
        public Object[] getArguments() { return arguments; }
    }

    /** RemoteInvocationHandler$UserRPCRequest (explicit SUID, no fields of its own). */
    public static final class UserRPCRequest extends RPCRequest {
        private static final long serialVersionUID = -9185841650347902580L;

        public UserRPCRequest(int oid, String declaringClassName, String methodName, String[] types, Object[] arguments) {
            super(oid, declaringClassName, methodName, types, arguments);
        }

        /** A call on a proxy with recordCreatedAt false (createdAt null), request id {@code id}. */
        public static UserRPCRequest of(int id, int oid, String declaringClassName, String methodName) {
            UserRPCRequest r = new UserRPCRequest(false, oid, declaringClassName, methodName, new String[0], new Object[0]);
            r.setId(id);
            return r;
        }

        private UserRPCRequest(boolean recordCreatedAt, int oid, String declaringClassName, String methodName,
                String[] types, Object[] arguments) {
            super(recordCreatedAt, oid, declaringClassName, methodName, types, arguments);
        }

        /** What remoting puts in UserRequest.toString, e.g. "UserRPCRequest:hudson.Launcher$RemoteProcess.join[](2)". */
        @Override
        public String toString() {
            return "UserRPCRequest:" + getDeclaringClassName() + "." + getMethodName()
                    + java.util.Arrays.toString(getTypes()) + "(" + getOid() + ")";
        }
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) {
        switch (method.getName()) {
            case "readResolve": return proxy;
            case "hashCode": return oid;
            case "equals": return proxy == args[0];
            case "toString": return "RemoteInvocationHandler(oid=" + oid + ")";
            default: throw new UnsupportedOperationException("simulator proxy: " + method);
        }
    }
}
