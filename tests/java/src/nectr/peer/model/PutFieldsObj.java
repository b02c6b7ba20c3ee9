package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * writeObject using putFields/writeFields: the values put differ from the field values
 * (count is written times ten), followed by custom data.
 * {@code streamFields()} tells the oracle dumper what was put.
 */
public class PutFieldsObj implements Serializable {
    private static final long serialVersionUID = 17L;

    public int count;
    public String text;
    public Object extra;

    public PutFieldsObj() {
    }

    public PutFieldsObj(int count, String text, Object extra) {
        this.count = count;
        this.text = text;
        this.extra = extra;
    }

    private void writeObject(ObjectOutputStream out) throws IOException {
        ObjectOutputStream.PutField fields = out.putFields();
        fields.put("count", count * 10);
        fields.put("text", text);
        fields.put("extra", extra);
        out.writeFields();
        writeData(out);
    }

    /** The field values put by writeObject, by name. */
    private Map<String, Object> streamFields() {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("count", count * 10);
        fields.put("text", text);
        fields.put("extra", extra);
        return fields;
    }

    private void writeData(ObjectOutput out) throws IOException {
        out.writeShort(count);
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        ObjectInputStream.GetField fields = in.readFields();
        count = fields.get("count", 0) / 10;
        text = (String) fields.get("text", null);
        extra = fields.get("extra", null);
        if (in.readShort() != (short) count) {
            throw new IOException("PutFieldsObj: unexpected custom data");
        }
    }
}
