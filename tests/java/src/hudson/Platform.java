package hudson;

/** `hudson.Platform`: an enum (stream SUID 0), written by name. EnvVars carries it (null on the wire). */
public enum Platform {
    WINDOWS,
    UNIX
}
