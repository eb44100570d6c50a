"""kubectl-mysql: the kubectl plugin (console script `kubectl-mysql`)."""
