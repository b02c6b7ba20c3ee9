package nectr.peer.model;

import java.io.Serializable;

/** SUID test: an empty public serializable class (implicit public constructor only). */
public class SuidPlain implements Serializable {
}
