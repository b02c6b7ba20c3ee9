package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.ObjectStreamField;
import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * serialPersistentFields declaring a stream field ("legacy") that does not exist as a Java
 * field, and omitting the real field "modern"; written and read with putFields/readFields.
 * Its writeObject writes nothing after the fields.
 */
public class Persistent implements Serializable {
    private static final long serialVersionUID = 18L;

    private static final ObjectStreamField[] serialPersistentFields = {
        new ObjectStreamField("legacy", int.class),
        new ObjectStreamField("title", String.class),
    };

    public int modern;
    public String title;

    public Persistent() {
    }

    public Persistent(int modern, String title) {
        this.modern = modern;
        this.title = title;
    }

    private void writeObject(ObjectOutputStream out) throws IOException {
        ObjectOutputStream.PutField fields = out.putFields();
        fields.put("legacy", modern + 1);
        fields.put("title", title);
        out.writeFields();
    }

    /** The field values put by writeObject, by name. */
    private Map<String, Object> streamFields() {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("legacy", modern + 1);
        fields.put("title", title);
        return fields;
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        ObjectInputStream.GetField fields = in.readFields();
        modern = fields.get("legacy", 0) - 1;
        title = (String) fields.get("title", null);
    }
}
