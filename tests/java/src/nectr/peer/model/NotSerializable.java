package nectr.peer.model;

/** Deliberately not Serializable: writing it makes ObjectOutputStream abort the stream. */
public class NotSerializable {
    public int value = 1;
}
