package nectr.peer.model;

import java.io.Serializable;

/** SUID test: an interface without methods (the ABSTRACT flag is dropped for the hash). */
public interface SuidMarker extends Serializable {
}
