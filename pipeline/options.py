"""One config key: a dataclass field with its default, the values it may take and its help. The
shared sections (pipeline/config.py) and each architecture's own section (pipeline/archs/) declare
their keys with it; it lives apart from both so that neither imports the other for it."""

from dataclasses import field


def option(default, *, choices=None, min=None, max=None, power_of_two=False, help=""):
    """One config key: its default, the values it may take (`choices` may be a function that lists
    them), and what it means."""
    return field(default=default, metadata=dict(choices=choices, min=min, max=max,
                                                power_of_two=power_of_two, help=help))
