"""zeroprobe: scheduled health probes served as Zero Problem documents."""

__version__ = "0.1.0"
