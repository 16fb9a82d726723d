"""cgroups package."""
