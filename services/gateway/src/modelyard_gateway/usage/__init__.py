"""Usage of registry models through bound groups: counted per request, written per interval."""
