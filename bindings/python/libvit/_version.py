"""The package's version: libvit's project version (meson.build), which the
build checks against this file."""
__version__ = "0.1.0"
