"""The Docker Engine as the agent sees it: the containers, networks and images of one device."""
