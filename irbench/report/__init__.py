"""Tables and figures built from run directories."""
