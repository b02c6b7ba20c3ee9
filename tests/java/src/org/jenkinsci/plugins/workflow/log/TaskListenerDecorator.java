package org.jenkinsci.plugins.workflow.log;

/** Holder of `TaskListenerDecorator$CloseableTaskListener`. */
public final class TaskListenerDecorator {
    private TaskListenerDecorator() {
    }

    /**
     * `$CloseableTaskListener` (SUID 1; closeDelegate, mainDelegate): the listener of a Pipeline
     * `sh` launch; without decorators both fields are the same Replacement.
     */
    public static final class CloseableTaskListener implements hudson.model.TaskListener {
        private static final long serialVersionUID = 1L;
        private final hudson.model.TaskListener mainDelegate;
        private final hudson.model.TaskListener closeDelegate;

        public CloseableTaskListener(hudson.model.TaskListener mainDelegate, hudson.model.TaskListener closeDelegate) {
            this.mainDelegate = mainDelegate;
            this.closeDelegate = closeDelegate;
        }
    }
}
