package nectr.peer;

/** The few JSON encoding helpers the oracle format needs. */
final class Json {
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private Json() {
    }

    /** Appends s as a JSON string literal (s must not contain unpaired surrogates). */
    static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 15]);
            } else {
                sb.append(c);
            }
        }
        sb.append('"');
    }

    /** s as a JSON string literal. */
    static String string(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2);
        string(sb, s);
        return sb.toString();
    }

    /** Appends the lowercase hex digits of bytes. */
    static void hex(StringBuilder sb, byte[] bytes) {
        for (byte b : bytes) {
            sb.append(HEX[(b >> 4) & 15]).append(HEX[b & 15]);
        }
    }

    /** {"str":...} or, if s has an unpaired surrogate, {"utf16":hex of the code units}. */
    static void stringValue(StringBuilder sb, String s) {
        if (hasUnpairedSurrogate(s)) {
            sb.append("{\"utf16\":\"");
            for (int i = 0; i < s.length(); i++) {
                fixedHex(sb, s.charAt(i), 4);
            }
            sb.append("\"}");
        } else {
            sb.append("{\"str\":");
            string(sb, s);
            sb.append('}');
        }
    }

    private static boolean hasUnpairedSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length()
                    && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return true;
            }
        }
        return false;
    }

    /** Appends {"block":"hex"}. */
    static void block(StringBuilder sb, byte[] bytes) {
        sb.append("{\"block\":\"");
        hex(sb, bytes);
        sb.append("\"}");
    }

    /** Appends {@code value} as exactly {@code digits} lowercase hex digits. */
    static void fixedHex(StringBuilder sb, long value, int digits) {
        for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
            sb.append(HEX[(int) (value >>> shift) & 15]);
        }
    }

    /** A JSON array of already rendered items. */
    static String array(Iterable<String> items) {
        StringBuilder sb = new StringBuilder("[");
        for (String item : items) {
            if (sb.length() > 1) {
                sb.append(',');
            }
            sb.append(item);
        }
        return sb.append(']').toString();
    }
}
