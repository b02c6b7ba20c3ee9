package nectr.peer.model;

import java.io.Serializable;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;

/** Serializable invocation handler for dynamic proxies. */
public class Handler implements InvocationHandler, Serializable {
    private static final long serialVersionUID = 24L;

    public String prefix;
    public Object target;

    public Handler() {
    }

    public Handler(String prefix, Object target) {
        this.prefix = prefix;
        this.target = target;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) {
        if (method.getName().equals("count")) {
            return prefix.length();
        }
        return prefix + (args == null ? "" : args[0]);
    }
}
