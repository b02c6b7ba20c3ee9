package nectr.sim;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * The controller's side of archiveArtifacts: reads the tar an agent wrote (ustar, GNU
 * {@code ././@LongLink} names 'L'/'K', PAX 'x' path/linkpath) and extracts it as Jenkins'
 * Ant-based reader does, refusing entries that leave the destination. Returns the entry names.
 */
final class TarReader {
    private TarReader() {
    }

    static List<String> extract(InputStream in, Path dest) throws IOException {
        Files.createDirectories(dest);
        Path base = dest.toRealPath();
        List<String> names = new ArrayList<>();
        byte[] h = new byte[512];
        String longName = null;
        String longLink = null;
        while (true) {
            if (!readFully(in, h)) throw new EOFException("tar ends without its two zero blocks");
            if (isZero(h)) break;
            verifyChecksum(h);
            char type = (char) h[156];
            long size = octal(h, 124, 12);
            if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
                byte[] data = readData(in, size);
                if (type == 'L') longName = cString(data);
                else if (type == 'K') longLink = cString(data);
                else if (type == 'x') {
                    String[] pl = pax(data);
                    if (pl[0] != null) longName = pl[0];
                    if (pl[1] != null) longLink = pl[1];
                }
                continue;
            }
            String name = longName != null ? longName : ustarName(h);
            String link = longLink != null ? longLink : cString(h, 157, 100);
            longName = null;
            longLink = null;
            int mode = (int) octal(h, 100, 8) & 0777;
            long mtime = octal(h, 136, 12);
            if (name.startsWith("/") || ("/" + name + "/").contains("/../")) {
                throw new IOException("tar entry " + name + " would be extracted outside " + dest);
            }
            String rel = name.endsWith("/") ? name.substring(0, name.length() - 1) : name;
            Path target = dest.resolve(rel).normalize();
            if (!target.startsWith(dest.normalize())) throw new IOException("tar entry " + name + " is outside " + dest);
            Path parentReal = target.getParent() == null ? base : realParent(target.getParent(), base, name);
            names.add(name);
            switch (type) {
                case '5':
                    Files.createDirectories(target);
                    setMode(target, mode);
                    skip(in, size);
                    break;
                case '2':
                    Files.createDirectories(parentReal);
                    Files.deleteIfExists(target);
                    Files.createSymbolicLink(target, Path.of(link));
                    break;
                case '0':
                case '\0':
                case '7': {
                    Files.createDirectories(parentReal);
                    byte[] data = readData(in, size);
                    Files.write(target, data);
                    setMode(target, mode);
                    Files.setLastModifiedTime(target, FileTime.fromMillis(mtime * 1000));
                    break;
                }
                default:
                    skip(in, size);
                    break;
            }
        }
        return names;
    }

    /** The real parent of an entry, which must stay under the destination (no symlink out of it). */
    private static Path realParent(Path parent, Path base, String name) throws IOException {
        Files.createDirectories(parent);
        Path real = parent.toRealPath();
        if (!real.startsWith(base)) throw new IOException("tar entry " + name + " goes through a symlink out of the destination");
        return real;
    }

    private static void setMode(Path p, int mode) throws IOException {
        Set<PosixFilePermission> s = EnumSet.noneOf(PosixFilePermission.class);
        PosixFilePermission[] all = PosixFilePermission.values(); // OWNER_READ .. OTHERS_EXECUTE
        for (int i = 0; i < 9; i++) if ((mode & (0400 >> i)) != 0) s.add(all[i]);
        Files.setPosixFilePermissions(p, s);
    }

    private static String ustarName(byte[] h) {
        String name = cString(h, 0, 100);
        String magic = new String(h, 257, 5, StandardCharsets.US_ASCII);
        if (magic.equals("ustar")) {
            String prefix = cString(h, 345, 155);
            if (!prefix.isEmpty()) name = prefix + "/" + name;
        }
        return name;
    }

    private static String[] pax(byte[] data) {
        String[] out = new String[2];
        int i = 0;
        while (i < data.length) {
            int sp = i;
            while (sp < data.length && data[sp] != ' ') sp++;
            int len = Integer.parseInt(new String(data, i, sp - i, StandardCharsets.US_ASCII));
            String kv = new String(data, sp + 1, len - (sp + 1 - i) - 1, StandardCharsets.UTF_8);
            int eq = kv.indexOf('=');
            if (kv.startsWith("path=")) out[0] = kv.substring(eq + 1);
            if (kv.startsWith("linkpath=")) out[1] = kv.substring(eq + 1);
            i += len;
        }
        return out;
    }

    private static void verifyChecksum(byte[] h) throws IOException {
        long want = octal(h, 148, 8);
        long sum = 0;
        for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : (h[i] & 0xFF);
        if (sum != want) throw new IOException("tar header checksum mismatch (" + sum + " != " + want + ")");
    }

    private static long octal(byte[] h, int off, int len) {
        if ((h[off] & 0x80) != 0) {
            // star/GNU base-256 (big numbers)
            long v = h[off] & 0x7F;
            for (int i = 1; i < len; i++) v = (v << 8) | (h[off + i] & 0xFF);
            return v;
        }
        long v = 0;
        for (int i = off; i < off + len; i++) {
            byte b = h[i];
            if (b == 0 || b == ' ') {
                if (v != 0 || i > off) {
                    if (b == 0) break;
                    continue;
                }
                continue;
            }
            v = v * 8 + (b - '0');
        }
        return v;
    }

    private static String cString(byte[] h, int off, int len) {
        int end = off;
        while (end < off + len && h[end] != 0) end++;
        return new String(h, off, end - off, StandardCharsets.UTF_8);
    }

    private static String cString(byte[] data) {
        return cString(data, 0, data.length);
    }

    private static boolean isZero(byte[] h) {
        for (byte b : h) if (b != 0) return false;
        return true;
    }

    private static boolean readFully(InputStream in, byte[] b) throws IOException {
        int off = 0;
        while (off < b.length) {
            int n = in.read(b, off, b.length - off);
            if (n < 0) {
                if (off == 0) return false;
                throw new EOFException("tar ends inside a header");
            }
            off += n;
        }
        return true;
    }

    private static byte[] readData(InputStream in, long size) throws IOException {
        if (size > Integer.MAX_VALUE - 512) throw new IOException("tar entry too large for the simulator: " + size);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[512];
        long left = size;
        while (left > 0) {
            if (!readFully(in, buf)) throw new EOFException("tar ends inside an entry");
            int n = (int) Math.min(512, left);
            out.write(buf, 0, n);
            left -= n;
        }
        return out.toByteArray();
    }

    private static void skip(InputStream in, long size) throws IOException {
        readData(in, size);
    }
}
