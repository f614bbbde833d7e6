"""Derivation, pure: the config resolved against the app and the machine. :mod:`.stack` for a
node (nginx + uWSGI), :mod:`.balancer` for HAProxy, :mod:`.image` for what an image and its
compose files / manifests need. Nothing here reads the host or writes a file."""
