package org.jenkinsci.remoting;

/**
 * Name twin of remoting's RoleChecker: the plugin callables of the JVM helper scenarios
 * ({@code tests/java/plugin}) declare {@code checkRoles(RoleChecker)}, and the simulator must
 * be able to reflect on them to write their instances. Never called here.
 */
public abstract class RoleChecker {
}
