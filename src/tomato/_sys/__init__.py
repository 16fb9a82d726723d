"""_sys package."""
